from bopnp.eval.report import format_leaderboard


def _row(method, ar, mssd, vsd=0.5):
    return {
        "method": method,
        "dataset": "lmo",
        "split": "test",
        "split_type": None,
        "bop19_average_recall": ar,
        "bop19_average_recall_vsd": vsd,
        "bop19_average_recall_mssd": mssd,
        "bop19_average_recall_mspd": 0.5,
        "add_s_recall": 0.4,
        "bop19_average_time_per_image": 1.25,
    }


def test_leaderboard_orders_by_ar_and_puts_na_last():
    rows = [
        _row("b", 0.4, 0.4),
        _row("nodepth", None, 0.9, vsd=None),
        _row("a", 0.6, 0.5),
        {"file": "results/bad_lmo-test.csv", "error": "line 3: score: not a number\nmore"},
    ]
    out = format_leaderboard(rows).splitlines()
    ranked = [line.split()[1] for line in out[1:4]]
    assert ranked == ["a", "b", "nodepth"]
    assert "n/a" in out[3] and any("n/a: VSD needs depth" in line for line in out)
    assert out[-1].strip() == "failed: results/bad_lmo-test.csv: line 3: score: not a number"
