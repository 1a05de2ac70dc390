import numpy as np

from v4s_lite.exercises import check_exercise


def _stub(x):
    raise NotImplementedError


def test_check_exercise_reports_right_and_wrong(capsys):
    assert check_exercise("double", lambda x: 2 * x, lambda x: 2 * x, reference=np.array([2.0, 4.0]), args=(np.array([1.0, 2.0]),))
    assert not check_exercise("double", lambda x: 3 * x, lambda x: 2 * x, reference=np.array([2.0, 4.0]), args=(np.array([1.0, 2.0]),))
    assert not check_exercise("shape", lambda x: x[:1], lambda x: x, reference=np.array([1.0, 2.0]), args=(np.array([1.0, 2.0]),))
    out = capsys.readouterr().out
    assert "✓ double" in out and "✗ double" in out and "shape (1,)" in out


def test_stub_falls_back_to_solution(capsys):
    assert check_exercise("stub", _stub, lambda x: x + 1, reference=lambda: 3.0, args=(2.0,))
    assert "hidden solution" in capsys.readouterr().out
