# bopnp: `make demo` sets everything up and runs the main job on the embedded synthetic dataset;
# `make test` runs the tests. Both run `setup` first, which is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BOP_PATH ?= datasets
DEMO ?= demo
RESULTS ?= $(wildcard results/*.csv)
PYTEST_ARGS ?=
EGL_DEBS := libegl1 libegl-mesa0 libgl1-mesa-dri libgles2
export BOP_PATH

.PHONY: setup egl demo test lint test-oldest bop-eval bop-toolkit-env bench gpu-check lmo-synth-recipe help

help:
	@echo "make demo      set up, then synth -> prepare -> train detector and pose network -> predict -> eval on '$(DEMO)'"
	@echo "make test      set up, then run the tests"
	@echo "make lint      ruff: lint rules and formatting (line length 120), as CI checks them"
	@echo "make test-oldest  the tests with the oldest supported torch/torchvision (own venv, several GB)"
	@echo "make bop-eval  score every CSV in results/ (or RESULTS=...) and print a leaderboard table"
	@echo "make bop-toolkit-env TOOLKIT=path/to/bop_toolkit  an environment for the official scorer (bopnp eval --backend bop_toolkit)"
	@echo "make bench     run the benchmarks in bench/"
	@echo "make gpu-check the GPU tests and the CUDA benchmarks (PY=python3 to use an existing environment)"
	@echo "make lmo-synth-recipe MODELS=dir MINUTES=8  render, prepare, train the pose network for MINUTES, score held-out renders"

setup: $(VENV)/.installed egl

# Reinstalls only when the dependencies change.
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $@

# Headless rendering needs EGL with Mesa's software drivers (or a GPU driver's EGL).
egl:
	@missing=""; for p in $(EGL_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ] || ! command -v dpkg-query >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then echo "installing EGL libraries:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "Rendering needs EGL libraries that are missing. Install them with:"; echo "  sudo apt-get install$$missing"; exit 1; fi

# The demo's budget: DEMO_MINUTES of wall time from `make demo` to the scores. Set-up and data take what they take
# (2-5 minutes), DEMO_RESERVE minutes are kept for prediction, scoring and pictures, and the two networks train side
# by side in the rest (written to results/train/demo/train_minutes; TRAIN_MINUTES sets it instead). Each network
# measures its own throughput at its start and runs the steps that fit (recorded in its config.json; the detector
# starts once the pose network has measured, so that it measures beside it, as it will train): the demo keeps
# to its time on a slow or loaded 2-core machine and learns more on a fast one or a GPU. Fixed budgets instead:
# `make demo DET_STEPS=2000 POSE_STEPS=6000`. A second `make demo` resumes and redoes nothing.
# One thread each (docs/training_study.md): the pose network's small convolutions gain almost nothing from a second
# thread, and the detector's second thread brings it half a core's worth. More cores: half each.
DEMO_MINUTES ?= 18
DEMO_RESERVE ?= 2
TRAIN_MINUTES ?=
DEMO_T0 := $(shell date +%s)
TRAIN_THREADS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 3 ? n / 2 : 1 )))
DET_STEPS ?=
POSE_STEPS ?=
CROP ?= 64
# Measured on the demo (docs/training_study.md): the pose network at batch 8 learns more per crop than at 16, for the
# same cost per crop, and most without augmentation (the demo's test images are rendered like its training images:
# AR* with GT boxes 0.29 against 0.19 with the light augmentation after 1400 steps); the detector trains at 240x180
# (1.9 images/s, against 1.6 at the cpu preset's 320x240).
# The pose network: pix2pose (docs/training_study.md: the best AR* per CPU-second of the networks measured), unet,
# resnet18 or resnet34.
POSE_ARCH ?= pix2pose
POSE_BATCH ?= 8
POSE_WIDTH ?= 16
POSE_AUGMENT ?= none
E2E_STEPS ?= 200
POSE_VAL_EVERY ?= 1000
DET_SIZE ?= 180
DEMO_RUNS := results/train/$(DEMO)
DEMO_OUT := results/$(DEMO)
resume_flag = $(if $(wildcard $(1)/last.pt),--resume,)
# --steps N where a step count is given, else the shared time budget
budget = $(if $(strip $(1)),--steps $(strip $(1)),--minutes $$(cat $(DEMO_RUNS)/train_minutes))

demo: setup
	$(BIN)/bopnp synth $(DEMO) --bop-path $(BOP_PATH) --resume
	$(BIN)/bopnp prepare $(DEMO) --bop-path $(BOP_PATH) --crop-size $(CROP)
	$(BIN)/bopnp check $(DEMO) --bop-path $(BOP_PATH) --fast
	@mkdir -p $(DEMO_RUNS)
	@if [ -n "$(TRAIN_MINUTES)" ]; then echo $(TRAIN_MINUTES) > $(DEMO_RUNS)/train_minutes; \
	elif [ ! -s $(DEMO_RUNS)/train_minutes ]; then awk -v now=$$(date +%s) 'BEGIN { \
		m = $(DEMO_MINUTES) - $(DEMO_RESERVE) - (now - $(DEMO_T0)) / 60; printf "%.1f\n", (m < 2 ? 2 : m) }' \
		> $(DEMO_RUNS)/train_minutes; fi
	@echo "training the pose network and, beside it, the detector (log: $(DEMO_RUNS)/detector.log):" \
		"$(TRAIN_THREADS) thread(s) each, $$(cat $(DEMO_RUNS)/train_minutes) min unless steps are given"
	@OMP_NUM_THREADS=$(TRAIN_THREADS) $(BIN)/bopnp train $(DEMO) --bop-path $(BOP_PATH) --stage pose --e2e \
		$(call budget,$(POSE_STEPS)) --e2e-steps $(E2E_STEPS) --arch $(POSE_ARCH) --batch-size $(POSE_BATCH) --width $(POSE_WIDTH) \
		--val-every $(POSE_VAL_EVERY) --augment $(POSE_AUGMENT) --out $(DEMO_RUNS)/pose $(call resume_flag,$(DEMO_RUNS)/pose) & pose=$$!; \
	trap 'kill $$pose $$det 2>/dev/null' INT TERM; \
	for i in $$(seq 300); do grep -qs '"startup"' $(DEMO_RUNS)/pose/log.jsonl && break; \
		kill -0 $$pose 2>/dev/null || break; sleep 1; done; \
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(BIN)/bopnp train $(DEMO) --bop-path $(BOP_PATH) --stage detector $(call budget,$(DET_STEPS)) \
		--min-size $(DET_SIZE) --max-size $$(( $(DET_SIZE) * 4 / 3 )) --progress \
		--out $(DEMO_RUNS)/detector $(call resume_flag,$(DEMO_RUNS)/detector) > $(DEMO_RUNS)/detector.log 2>&1 & det=$$!; \
	wait $$pose; rc=$$?; if [ $$rc -ne 0 ]; then kill $$det 2>/dev/null; wait $$det; exit $$rc; fi; \
	echo "pose network done; the detector ($(DEMO_RUNS)/detector.log):"; tail -n 3 -f --pid=$$det $(DEMO_RUNS)/detector.log; \
	wait $$det; rc=$$?; if [ $$rc -ne 0 ]; then echo "detector training failed (exit $$rc): $(DEMO_RUNS)/detector.log"; fi; exit $$rc
	$(BIN)/bopnp predict $(DEMO) --bop-path $(BOP_PATH) --detector $(DEMO_RUNS)/detector --pose $(DEMO_RUNS)/pose \
		--out $(DEMO_OUT) --eval
	@cp $(DEMO_OUT)/eval/bopnp_$(DEMO)-test/scores_bop19.json $(DEMO_OUT)/scores_bop19.json
	$(BIN)/bopnp viz $(DEMO) --bop-path $(BOP_PATH) --results $(DEMO_OUT)/bopnp_$(DEMO)-test.csv --images 4 \
		--out $(DEMO_OUT)/overlays.png
	@echo
	@echo "Scores: $(DEMO_OUT)/scores_bop19.json (table above); overlays: $(DEMO_OUT)/overlays.png"
	@echo "Runs: $(DEMO_RUNS)/detector, $(DEMO_RUNS)/pose; GT pictures: bopnp viz $(DEMO) --bop-path $(BOP_PATH)"

# The time-budgeted pose recipe (bopnp recipe): renders of MODELS (e.g. LM-O's models/), their crops, the pose
# network trained for MINUTES (L_trans, then e2e), scored on held-out renders of another seed with GT boxes.
MODELS ?= $(BOP_PATH)/lmo/models
MINUTES ?= 8
RECIPE_ARGS ?=
lmo-synth-recipe: setup
	$(BIN)/bopnp recipe --models $(MODELS) --minutes $(MINUTES) --bop-path $(BOP_PATH) $(RECIPE_ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The oldest supported torch and torchvision (2.11 / 0.26) with the rest of the pinned set, in their own venv.
# Their wheels are CUDA builds: the first run downloads several GB of CUDA packages.
OLDEST_VENV ?= .venv-oldest
OLDEST_TORCH := torch==2.11.0 torchvision==0.26.0
test-oldest: egl
	@test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv $(OLDEST_VENV)
	grep -v -E '^(torch|torchvision)==' constraints.txt > $(OLDEST_VENV)/constraints.txt
	$(OLDEST_VENV)/bin/python -m pip install -q --disable-pip-version-check -c $(OLDEST_VENV)/constraints.txt $(OLDEST_TORCH) -e '.[test]'
	$(OLDEST_VENV)/bin/python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	$(OLDEST_VENV)/bin/python -m pytest $(PYTEST_ARGS)

bop-eval: setup
	@if [ -z "$(RESULTS)" ]; then echo "no results CSV in results/ (pass RESULTS=path/to/METHOD_DATASET-SPLIT.csv)"; exit 1; fi
	$(BIN)/bopnp eval --leaderboard $(RESULTS)

# The official scorer in its own environment: bop_toolkit needs numpy < 2 (bopnp runs on numpy 2), pypng, vispy
# and its other requirements. From a clone of https://github.com/thodan/bop_toolkit:
#   make bop-toolkit-env TOOLKIT=../bop_toolkit && export BOPNP_TOOLKIT_PYTHON=$PWD/.venv-bop-toolkit/bin/python
#   bopnp eval results/m_lmo-test.csv --backend bop_toolkit      # both evaluations, side by side
TOOLKIT ?=
TOOLKIT_VENV ?= .venv-bop-toolkit
TOOLKIT_DEPS := "numpy<2" pillow pypng pytz webdataset pyopengl imageio scikit-image scipy vispy \
	opencv-python-headless matplotlib tqdm
bop-toolkit-env:
	@if [ -z "$(TOOLKIT)" ] || [ ! -f "$(TOOLKIT)/scripts/eval_bop19_pose.py" ]; then \
		echo "make bop-toolkit-env TOOLKIT=path/to/bop_toolkit: a clone of https://github.com/thodan/bop_toolkit" \
			"(it needs scripts/eval_bop19_pose.py; got TOOLKIT='$(TOOLKIT)')"; exit 2; fi
	@test -x $(TOOLKIT_VENV)/bin/python || $(PYTHON) -m venv $(TOOLKIT_VENV)
	$(TOOLKIT_VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(TOOLKIT_VENV)/bin/python -m pip install -q --disable-pip-version-check $(TOOLKIT_DEPS)
	$(TOOLKIT_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e $(TOOLKIT)
	$(TOOLKIT_VENV)/bin/python -c "import bop_toolkit_lib, numpy, png, vispy; print('bop_toolkit ready, numpy', numpy.__version__)"
	@echo "use it with: export BOPNP_TOOLKIT_PYTHON=$(abspath $(TOOLKIT_VENV))/bin/python" \
		"(or bopnp eval ... --backend bop_toolkit --toolkit-python $(abspath $(TOOLKIT_VENV))/bin/python)"

BENCHES ?= bench/bpnp.py bench/render.py bench/eval.py bench/train.py bench/detect.py bench/predict.py

# Every benchmark runs even when one fails (e.g. no LM-O data for render/eval); the exit status says if any did.
bench: setup
	@failed=""; for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

# On a CUDA machine: the tests marked gpu, then the benchmarks (they add CUDA rows when a GPU is present).
# PY=python3 on a machine where bopnp is not installed: the checkout goes on PYTHONPATH.
PY ?= $(BIN)/python
gpu-check: export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
gpu-check:
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check needs a CUDA device')"
	$(PY) -m pytest -m gpu -q -rs
	$(PY) bench/bpnp.py --full
	$(PY) bench/render.py
	$(PY) bench/eval.py
	$(PY) bench/train.py
	$(PY) bench/detect.py
	$(PY) bench/predict.py
