import json

import pytest

from benchmarks.paired_tradeoff import main


def _paired(path, clips, **gaps):
    students = {"release": {"wer": 0.5}}
    students.update({name: {"wer": 0.5 + g, "vs_release": {"gap": g, "low": g - 0.02, "high": g + 0.02}}
                     for name, g in gaps.items()})
    path.write_text(json.dumps({"clips": clips, "students": students}))
    return path


def test_students_paired_on_both_sets_become_points_and_rows(tmp_path, capsys):
    gain = [_paired(tmp_path / "gain_a.json", 100, adapted=-0.11),
            _paired(tmp_path / "gain_b.json", 100, mixed=-0.08, adapted=-0.5)]
    cost = [_paired(tmp_path / "cost.json", 200, adapted=0.13, mixed=0.025, other=0.0)]
    out = tmp_path / "tradeoff.png"
    assert main(["--gain", *map(str, gain), "--cost", *map(str, cost), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    rows = out.with_suffix(".md").read_text().splitlines()[2:]
    # ordered by gain; a student's first file wins; "other", paired on one set only, is left out
    assert rows == ["| adapted | -11.0 (-13.0 .. -9.0) | +13.0 (+11.0 .. +15.0) |",
                    "| mixed | -8.0 (-10.0 .. -6.0) | +2.5 (+0.5 .. +4.5) |"]
    assert "adapted" in capsys.readouterr().out


def test_no_student_in_both_sets_is_an_error(tmp_path):
    gain, cost = _paired(tmp_path / "a.json", 9, x=-0.1), _paired(tmp_path / "b.json", 9, y=0.1)
    with pytest.raises(SystemExit):
        main(["--gain", str(gain), "--cost", str(cost), "--out", str(tmp_path / "t.png")])
