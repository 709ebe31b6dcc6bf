"""Tracing a model's graph while another thread runs a model: fx patches nn.Module.__call__ for the
whole process during a trace, so the other thread's calls must pass through untouched."""

import threading

import torch
from torch import nn

from deeparch.introspection.graph import TracedPart, trace_graph


class CallsAnotherModelMeanwhile(nn.Module):
    """While it is being traced, another thread runs a separate Linear on a real tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.other = nn.Linear(4, 5)
        self.outcome: dict[str, object] = {}

    def forward(self, x):
        if isinstance(x, torch.fx.Proxy):
            worker = threading.Thread(target=self._other_thread)
            worker.start()
            worker.join()
        return self.fc(x)

    def _other_thread(self) -> None:
        try:
            self.outcome["shape"] = tuple(self.other(torch.ones(6, 4)).shape)
        except Exception as error:  # noqa: BLE001  (the test reports it)
            self.outcome["error"] = repr(error)


def test_another_threads_module_call_during_a_trace_runs_as_usual():
    model = CallsAnotherModelMeanwhile()
    graph = trace_graph(model, [TracedPart("", model, "forward", (torch.ones(2, 3),))])
    assert model.outcome == {"shape": (6, 5)}
    assert graph.nodes  # the trace itself still worked
