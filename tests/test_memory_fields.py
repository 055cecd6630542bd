"""The memory event's GPU peaks are per step: reading them resets torch's counters (checked with a fake CUDA)."""
import torch

from grpo_studio.engine.train import memory


class FakeCuda:
    """torch.cuda's memory counters for one device, driven by the test."""

    def __init__(self):
        self.allocated = self.reserved = self.peak = self.peak_reserved = 0
        self.resets = 0

    def use(self, allocated, reserved, peak, peak_reserved):
        self.allocated, self.reserved = allocated, reserved
        self.peak, self.peak_reserved = max(self.peak, peak), max(self.peak_reserved, peak_reserved)

    def reset(self, device=None):
        self.peak, self.peak_reserved = self.allocated, self.reserved
        self.resets += 1

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: self.reserved)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: self.peak_reserved)
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", self.reset)


class FakeOffload:
    def __init__(self):
        self.offloaded, self.offloaded_peak = 0, 0

    def stats(self):
        return {"offloaded": self.offloaded, "offloaded_peak": self.offloaded_peak}

    def reset_peaks(self):
        self.offloaded_peak = self.offloaded


def test_gpu_peak_is_the_peak_of_each_step_not_of_the_whole_run(monkeypatch):
    cuda, offload = FakeCuda(), FakeOffload()
    cuda.install(monkeypatch)
    device = torch.device("cuda", 0)
    cuda.use(allocated=100, reserved=200, peak=900, peak_reserved=1000)  # step 1 peaks high
    offload.offloaded_peak = 50
    first = memory.memory_fields(device, offload)
    cuda.use(allocated=100, reserved=200, peak=300, peak_reserved=400)  # step 2 stays lower
    second = memory.memory_fields(device, offload)
    assert (first["gpu_peak"], first["gpu_peak_reserved"], first["offloaded_peak"]) == (900, 1000, 50)
    assert (second["gpu_peak"], second["gpu_peak_reserved"], second["offloaded_peak"]) == (300, 400, 0)
    assert second["gpu_allocated"] == 100 and second["gpu_reserved"] == 200 and cuda.resets == 2


def test_cpu_runs_report_no_gpu_figures():
    fields = memory.memory_fields(torch.device("cpu"))
    assert fields["gpu_peak"] is None and fields["gpu_peak_reserved"] is None and fields["rss"] > 0
