"""The report names the unreadable images a run left out (record key ``skipped_unreadable``)."""

from robustjax.eval import report
from robustjax.eval.store import Store


def rec(defense, skipped=None):
    r = {"key": defense, "settings": {"dataset": "folder", "model": "m", "defense": defense, "attack": "fgsm",
                                      "hparams": {}, "threat": "oblivious", "head": None},
         "eps": [0.0, 8 / 255], "accuracy": [1.0, 0.5], "correct": [12, 6], "n_images": 12,
         "timing": {"per_image_s": 0.1}, "devices": 1, "platform": "cpu"}
    return r | ({"skipped_unreadable": skipped} if skipped is not None else {})


def test_report_and_summary_name_the_skipped_images(tmp_path):
    store = Store(tmp_path)
    store.append(rec("none", ["cat/garbage.jpg"]))
    store.append(rec("jpeg:25", ["cat/garbage.jpg"]))
    line = "Skipped 1 unreadable image(s) of folder (--skip-unreadable): cat/garbage.jpg."
    assert report.render(tmp_path, plots=False).count(line) == 1  # once per dataset, not per cell
    assert report.summary_table(store.records()).endswith(line)


def test_no_line_without_the_key_and_long_lists_are_counted(tmp_path):
    assert "Skipped" not in report.summary_table([rec("none"), rec("jpeg:25", [])])
    many = [f"x/{i:03d}.png" for i in range(25)]
    (line,) = report.skipped_unreadable([rec("none", many)])
    assert line.startswith("Skipped 25 unreadable") and "x/019.png and 5 more." in line and "x/020.png" not in line
