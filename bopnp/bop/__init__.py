"""The BOP format, and nothing else (no rendering): ``io`` reads and writes every BOP file with typed
records (``records``), ``dataset`` gives lazy access to a dataset folder, ``symmetry`` turns
``models_info.json`` symmetries into transforms, and ``check`` reports every problem of a dataset."""
