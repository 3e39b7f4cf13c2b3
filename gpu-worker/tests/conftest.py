"""Session-wide test settings."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def onnx_template_cache(tmp_path_factory):
    """ONNX graph templates (softgrpo.onnx_template) go to one folder per test session, never the user's cache: a
    test run neither reuses nor leaves behind graphs of an earlier one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTGRPO_ONNX_CACHE", str(tmp_path_factory.mktemp("onnx-templates")))
        yield
