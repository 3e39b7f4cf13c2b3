"""Session-wide test settings."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def onnx_template_cache(tmp_path_factory):
    """ONNX graph templates (softgrpo.onnx_template) go to one folder per test session, never the user's cache: a
    test run neither reuses nor leaves behind graphs of an earlier one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTGRPO_ONNX_CACHE", str(tmp_path_factory.mktemp("onnx-templates")))
        yield


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """Entry points tests call in-process (import_model.main, cli.main) set torch's thread count for the process;
    a later test's float summation order (and so tolerances such as test_rollout's batched-vs-single logprobs)
    must not depend on which test ran before it, so every test ends with the count it started with."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
