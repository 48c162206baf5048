"""The detectron2 bootstrap: placeholder compiled ops, the install hint, the env report, the
import-time warnings and Pillow names, and the version helpers (capabilities, not version
strings)."""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from als_d2 import compat


def run_python(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_detectron2_layers_import_after_als_d2():
    proc = run_python(
        """
        import als_d2
        import detectron2.layers
        from detectron2.modeling import build_model
        print("ok", detectron2.layers.ShapeSpec)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


@pytest.mark.skipif(
    compat.HAS_COMPILED_OPS, reason="the installed detectron2 has real compiled ops"
)
def test_placeholder_registered_and_names_the_op():
    import detectron2
    import detectron2.layers  # noqa: F401  (imports `_C` at module level)

    placeholder = sys.modules["detectron2._C"]
    assert detectron2._C is placeholder
    with pytest.raises(RuntimeError, match=r"deform_conv_forward.*official build"):
        placeholder.deform_conv_forward  # noqa: B018  (the attribute access is the test)
    # probing for dunders (hasattr, inspect, pickle) stays harmless
    assert not hasattr(placeholder, "__wrapped__")


@pytest.mark.skipif(
    compat.HAS_COMPILED_OPS, reason="the installed detectron2 has real compiled ops"
)
def test_compiled_op_use_raises_clear_error():
    import torch
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    boxes = torch.tensor([[5.0, 5.0, 4.0, 4.0, 0.0]])
    with pytest.raises(RuntimeError, match="box_iou_rotated"):
        pairwise_iou_rotated(boxes, boxes)


def test_no_placeholder_when_compiled_ops_exist():
    """A detectron2._C that can be found is left alone (simulated by a meta-path finder)."""
    proc = run_python(
        """
        import importlib.abc, importlib.util, sys, types

        class CompiledOps(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            def find_spec(self, name, path=None, target=None):
                if name == "detectron2._C":
                    return importlib.util.spec_from_loader(name, self)
            def create_module(self, spec):
                m = types.ModuleType(spec.name)
                m.REAL = True
                return m
            def exec_module(self, module):
                pass

        sys.meta_path.insert(0, CompiledOps())
        import als_d2
        from als_d2 import compat
        import detectron2.layers
        assert compat.HAS_COMPILED_OPS is True
        real = sys.modules["detectron2._C"]
        assert getattr(real, "REAL", False), type(real)
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_import_error_without_detectron2_says_how_to_install():
    proc = run_python(
        """
        import sys
        sys.modules["detectron2"] = None  # as if detectron2 were not installed
        try:
            import als_d2
        except ImportError as e:
            print(str(e))
        else:
            raise SystemExit("als_d2 imported without detectron2")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == compat.INSTALL_HINT.strip()
    assert "git+https://github.com/facebookresearch/detectron2.git" in proc.stdout
    assert "make setup" in proc.stdout


def test_detectron2_env_report_works():
    """default_setup() calls collect_env_info(); it must not crash on the placeholder."""
    from detectron2.utils.collect_env import collect_env_info

    info = collect_env_info()
    assert "detectron2" in info
    if not compat.HAS_COMPILED_OPS:
        assert compat.PLACEHOLDER_NOTE in info


def test_als_d2_env_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "als_d2.env"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    import torch

    rows = dict(
        line.split(None, 1)
        for line in proc.stdout.splitlines()
        if line and not line.startswith(("detectron2 ", "torch CUDA", "CUDA dev", "CPU thr"))
    )
    assert rows["torch"].strip() == torch.__version__.split("+")[0]
    assert "detectron2 compiled ops" in proc.stdout


def test_pillow_aliases_restored_only_where_missing():
    from types import SimpleNamespace

    from PIL import Image

    from als_d2.compat import restore_pillow_aliases

    pillow10 = SimpleNamespace(BILINEAR=2, BICUBIC=3, LANCZOS=1)  # Pillow >= 10: no old names
    assert restore_pillow_aliases(pillow10) == ["LINEAR", "CUBIC", "ANTIALIAS"]
    assert (pillow10.LINEAR, pillow10.CUBIC, pillow10.ANTIALIAS) == (2, 3, 1)
    pillow9 = SimpleNamespace(LINEAR=2, BILINEAR=2, CUBIC=3, BICUBIC=3, ANTIALIAS=1, LANCZOS=1)
    assert restore_pillow_aliases(pillow9) == []
    # whatever Pillow is installed, detectron2 v0.6's names resolve to the right filters
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # Pillow 9.x: the names exist, deprecated
        assert (
            Image.LINEAR == Image.BILINEAR
            and Image.CUBIC == Image.BICUBIC
            and Image.ANTIALIAS == Image.LANCZOS
        )


def test_import_side_effects_are_the_documented_ones():
    """``import als_d2`` hides detectron2's and fvcore's import-time warnings while it imports
    them and leaves no warnings filter behind; a user's own torch.jit.script warning is shown;
    Pillow is patched only where it lacks the names (>= 10)."""
    proc = run_python(
        """
        import json, sys, warnings
        import PIL
        from PIL import Image
        warnings.simplefilter("always")
        before = list(warnings.filters)
        with warnings.catch_warnings(record=True) as seen:
            import als_d2
        after = list(warnings.filters)
        with warnings.catch_warnings(record=True) as later:
            warnings.warn("`torch.jit.script` is deprecated. (user code)", FutureWarning)
        print(json.dumps({
            "seen": [str(w.message)[:80] for w in seen],
            "filters_unchanged": before == after,
            "later": [str(w.message) for w in later],
            "pillow_major": int(PIL.__version__.split(".")[0]),
            "linear_set": "LINEAR" in vars(Image),
        }))
        """
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    quiet = [m for m in out["seen"] if "torch.jit.script" in m or "LINEAR is deprecated" in m]
    assert quiet == [], quiet
    assert out["filters_unchanged"]
    assert out["later"] == ["`torch.jit.script` is deprecated. (user code)"]
    assert out["linear_set"] == (out["pillow_major"] >= 10)


def test_cpu_launch_capability_matches_the_installed_launcher(tmp_path):
    """The capability flag against what the installed detectron2's worker does without CUDA:
    main runs the job in a gloo group of one, v0.6 asserts CUDA."""
    proc = run_python(
        f"""
        import importlib, json, os
        import als_d2
        from als_d2 import compat
        # (detectron2.engine's attribute `launch` is the function, not the module)
        launch_module = importlib.import_module("detectron2.engine.launch")

        ran = []
        try:
            url = "file://{tmp_path}/init"
            launch_module._distributed_worker(0, lambda: ran.append(1), 1, 1, 0, url, ())
        except AssertionError as e:
            assert "cuda" in str(e).lower(), e
        print(json.dumps({{"flag": compat.launch_supports_cpu_workers(), "ran": bool(ran)}}))
        """,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["flag"] == out["ran"], out


def test_cpu_launch_capability_is_the_comm_helper(monkeypatch):
    from detectron2.utils import comm

    monkeypatch.delattr(comm, "create_local_process_group", raising=False)
    assert compat.launch_supports_cpu_workers() is False
    monkeypatch.setattr(comm, "create_local_process_group", lambda n: None, raising=False)
    assert compat.launch_supports_cpu_workers() is True
