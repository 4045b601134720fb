"""PyTorch backend: torchvision's resnet18, resnet50 and alexnet, SGD with momentum, cross-entropy.

Precision: fp32 turns TF32 off for matmuls and cuDNN convolutions (PyTorch enables TF32 convolutions by
default), tf32 turns it on, bf16 and fp16 use autocast (fp16 with a gradient scaler on the GPU).
"""

from __future__ import annotations

from startbench.workload.frameworks import cpu_count, cpu_name


class PyTorchBackend:
    name = "pytorch"

    def import_framework(self) -> dict[str, str]:
        import torch
        import torchvision

        self.torch = torch
        self.torchvision = torchvision
        return {"torch": torch.__version__, "torchvision": torchvision.__version__}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def init_device(self, want: str) -> dict:
        torch = self.torch
        use_gpu = want == "gpu" or (want == "auto" and torch.cuda.is_available())
        if use_gpu and not torch.cuda.is_available():
            raise RuntimeError("--device gpu: torch.cuda.is_available() is False (no GPU visible to this "
                               "container, or a CPU-only torch build); use --device auto or cpu")
        self.device = torch.device("cuda", 0) if use_gpu else torch.device("cpu")
        x = torch.ones(16, device=self.device)
        float((x * 2).sum().item())  # .item() waits for the device
        self._sync()
        if use_gpu:
            # The runner finds this device in NVML by its UUID (workload/gpu.py) and names it from there.
            props = torch.cuda.get_device_properties(0)
            uuid = getattr(props, "uuid", None)
            return {"kind": "gpu", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                    "uuid": str(uuid) if uuid is not None else None, "ordinal": 0}
        return {"kind": "cpu", "name": cpu_name(), "count": cpu_count()}

    def build_model(self, cfg) -> None:
        torch = self.torch
        if self.device.type == "cuda":
            tf32 = cfg.precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        factory = getattr(self.torchvision.models, cfg.model)
        self.model = factory(weights=None, num_classes=cfg.num_classes).to(self.device).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        use_scaler = cfg.precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self._sync()

    def prepare_data(self, cfg, dataset) -> None:
        torch = self.torch
        self.batches = None
        if dataset is None:
            g = torch.Generator(device=self.device).manual_seed(0)
            self.x = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=self.device, generator=g)
            self.y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), device=self.device, generator=g)
        else:
            from startbench.workload.data import batches

            self.batches = batches(dataset[0], dataset[1], cfg.batch_size)
            self.x, self.y = self._to_device(*next(self.batches))
        self._sync()

    def _to_device(self, x, y):
        torch = self.torch
        xt = torch.from_numpy(x).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return xt.contiguous(), torch.from_numpy(y).long().to(self.device)

    def _forward_backward(self, x, y):
        torch = self.torch
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss = self.loss_fn(self.model(x), y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        return loss

    def step(self) -> None:
        x, y = (self.x, self.y) if self.batches is None else self._to_device(*next(self.batches))
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._forward_backward(x, y)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        loss.item()  # waits for the device, and fails loudly on a broken step
        self._sync()

    def memory_report(self) -> tuple[float | None, str | None]:
        """(peak MiB the framework allocated, a note on what NVML's figure holds besides) on a GPU."""
        if self.device.type != "cuda":
            return None, None
        cuda = self.torch.cuda
        reserved = cuda.max_memory_reserved(self.device) / 2**20
        return cuda.max_memory_allocated(self.device) / 2**20, (
            f"NVML's mem_used_max_mib also counts the CUDA context and torch's block cache (reserved peak "
            f"{reserved:.0f} MiB); framework_mem_peak_mib is torch.cuda.max_memory_allocated")

    def counted_flops_per_sample(self, cfg) -> float | None:
        """Forward + backward FLOPs of one sample, counted by torch.utils.flop_counter (after the timed
        window; gradients are cleared again, weights are not updated)."""
        try:
            from torch.utils.flop_counter import FlopCounterMode
        except ImportError:
            return None
        counter = FlopCounterMode(display=False)
        with counter:
            self._forward_backward(self.x[:1], self.y[:1])
        self.optimizer.zero_grad(set_to_none=True)
        return float(counter.get_total_flops())
