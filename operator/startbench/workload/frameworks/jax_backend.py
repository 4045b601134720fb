"""JAX backend: Flax (linen) definitions of ResNet18, ResNet50 and AlexNet matching torchvision's
architectures (NHWC), SGD with momentum from optax, one jitted training step.

Precision: fp32 sets jax_default_matmul_precision to "highest" (no TF32 on the GPU), tf32 to
"tensorfloat32"; bf16 and fp16 compute in that dtype with float32 parameters (fp16 without loss
scaling: a throughput benchmark, not a convergence recipe). FLOPs come from
perf.formula_flops_per_sample, which counts these very architectures (JAX's cost analysis counts
element-wise work too, which would not compare with the PyTorch counter).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Any

from startbench.workload.frameworks import cpu_count, cpu_name

DEFAULT_MEM_FRACTION = "0.75"  # XLA_PYTHON_CLIENT_MEM_FRACTION when unset (JAX's GPU memory allocation docs)


def preallocation_note(env: Mapping[str, str], pool_bytes: float | None) -> str:
    """What NVML's memory figure means under JAX's allocator settings (pure: reads `env` only)."""
    preallocate = env.get("XLA_PYTHON_CLIENT_PREALLOCATE", "true").strip().lower() not in ("false", "0")
    if env.get("XLA_PYTHON_CLIENT_ALLOCATOR", "").strip().lower() == "platform" or not preallocate:
        return ("JAX preallocation off (XLA_PYTHON_CLIENT_PREALLOCATE/ALLOCATOR): mem_used_max_mib follows the "
                "allocator; framework_mem_peak_mib is peak_bytes_in_use")
    fraction = env.get("XLA_PYTHON_CLIENT_MEM_FRACTION") or DEFAULT_MEM_FRACTION
    pool = f", {pool_bytes / 2**20:.0f} MiB" if pool_bytes else ""
    return (f"JAX preallocates {fraction} of GPU memory{pool}: mem_used_max_mib shows that pool; "
            "framework_mem_peak_mib is peak_bytes_in_use (XLA_PYTHON_CLIENT_PREALLOCATE=false turns it off)")


def _models(nn, jnp):
    """Model classes, defined once flax is imported."""

    class BasicBlock(nn.Module):
        filters: int
        strides: int = 1
        dtype: Any = jnp.float32

        @nn.compact
        def __call__(self, x, train: bool):
            conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
            norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype)
            y = nn.relu(norm()(conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(x)))
            y = norm(scale_init=nn.initializers.zeros)(conv(self.filters, (3, 3), padding=1)(y))
            if x.shape != y.shape:
                x = norm()(conv(self.filters, (1, 1), (self.strides, self.strides))(x))
            return nn.relu(x + y)

    class Bottleneck(nn.Module):
        filters: int
        strides: int = 1
        dtype: Any = jnp.float32

        @nn.compact
        def __call__(self, x, train: bool):
            conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
            norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype)
            y = nn.relu(norm()(conv(self.filters, (1, 1))(x)))
            y = nn.relu(norm()(conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(y)))
            y = norm(scale_init=nn.initializers.zeros)(conv(self.filters * 4, (1, 1))(y))
            if x.shape != y.shape:
                x = norm()(conv(self.filters * 4, (1, 1), (self.strides, self.strides))(x))
            return nn.relu(x + y)

    class ResNet(nn.Module):
        stage_sizes: tuple
        block: Any
        num_classes: int
        dtype: Any = jnp.float32

        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.Conv(64, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], use_bias=False, dtype=self.dtype)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype)(x)
            x = nn.max_pool(nn.relu(x), (3, 3), (2, 2), padding=((1, 1), (1, 1)))
            for i, n in enumerate(self.stage_sizes):
                for j in range(n):
                    x = self.block(64 * 2**i, strides=2 if i > 0 and j == 0 else 1, dtype=self.dtype)(x, train)
            x = jnp.mean(x, axis=(1, 2))
            return nn.Dense(self.num_classes, dtype=jnp.float32)(x)

    def adaptive_avg_pool(x, out: int):
        """torch.nn.AdaptiveAvgPool2d semantics: bin i covers [floor(i*H/out), ceil((i+1)*H/out))."""
        h, w = x.shape[1], x.shape[2]
        rows = []
        for i in range(out):
            r0, r1 = (i * h) // out, -((-(i + 1) * h) // out)
            cols = []
            for j in range(out):
                c0, c1 = (j * w) // out, -((-(j + 1) * w) // out)
                cols.append(jnp.mean(x[:, r0:r1, c0:c1, :], axis=(1, 2)))
            rows.append(jnp.stack(cols, axis=1))
        return jnp.stack(rows, axis=1)

    class AlexNet(nn.Module):
        num_classes: int
        dtype: Any = jnp.float32

        @nn.compact
        def __call__(self, x, train: bool):
            conv = partial(nn.Conv, dtype=self.dtype)
            pool = partial(nn.max_pool, window_shape=(3, 3), strides=(2, 2))
            x = pool(nn.relu(conv(64, (11, 11), (4, 4), padding=2)(x)))
            x = pool(nn.relu(conv(192, (5, 5), padding=2)(x)))
            x = nn.relu(conv(384, (3, 3), padding=1)(x))
            x = nn.relu(conv(256, (3, 3), padding=1)(x))
            x = pool(nn.relu(conv(256, (3, 3), padding=1)(x)))
            x = adaptive_avg_pool(x, 6).reshape((x.shape[0], -1))
            x = nn.Dropout(0.5, deterministic=not train)(x)
            x = nn.relu(nn.Dense(4096, dtype=self.dtype)(x))
            x = nn.Dropout(0.5, deterministic=not train)(x)
            x = nn.relu(nn.Dense(4096, dtype=self.dtype)(x))
            return nn.Dense(self.num_classes, dtype=jnp.float32)(x)

    def make(model: str, num_classes: int, dtype):
        if model == "resnet18":
            return ResNet((2, 2, 2, 2), BasicBlock, num_classes, dtype)
        if model == "resnet50":
            return ResNet((3, 4, 6, 3), Bottleneck, num_classes, dtype)
        if model == "alexnet":
            return AlexNet(num_classes, dtype)
        raise ValueError(f"unknown model {model!r}")

    return make


class JaxBackend:
    name = "jax"

    def import_framework(self) -> dict[str, str]:
        import flax
        import flax.linen as nn
        import jax
        import jax.numpy as jnp
        import optax

        self.jax, self.jnp, self.nn, self.optax = jax, jnp, nn, optax
        return {"jax": jax.__version__, "flax": flax.__version__}

    def init_device(self, want: str) -> dict:
        jax, jnp = self.jax, self.jnp
        if want == "cpu":
            jax.config.update("jax_platforms", "cpu")
        device = jax.devices()[0]
        if want == "gpu" and device.platform != "gpu":
            raise RuntimeError(f"--device gpu: JAX's default device is {device.platform!r} (install jax[cuda12] "
                               "or jax[cuda13] in the image, or use --device auto or cpu)")
        self.device = device
        (jax.device_put(jnp.ones(16), device) * 2).sum().block_until_ready()
        if device.platform == "gpu":
            # The runner finds this device in NVML (workload/gpu.py): JAX gives no UUID, only its CUDA ordinal.
            ordinal = getattr(device, "local_hardware_id", None)
            return {"kind": "gpu", "name": device.device_kind,
                    "count": len([d for d in jax.devices() if d.platform == "gpu"]),
                    "ordinal": ordinal if isinstance(ordinal, int) and ordinal >= 0 else 0}
        return {"kind": "cpu", "name": cpu_name(), "count": cpu_count()}

    def build_model(self, cfg) -> None:
        jax, jnp, optax = self.jax, self.jnp, self.optax
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if cfg.precision == "tf32" else "highest")
        dtype = {"bf16": jnp.bfloat16, "fp16": jnp.float16}.get(cfg.precision, jnp.float32)
        model = _models(self.nn, jnp)(cfg.model, cfg.num_classes, dtype)
        self.key = jax.random.PRNGKey(0)
        sample = jnp.ones((1, cfg.image_size, cfg.image_size, 3), jnp.float32)
        variables = jax.jit(partial(model.init, train=False))({"params": self.key, "dropout": self.key}, sample)
        tx = optax.sgd(0.01, momentum=0.9)
        self.params = variables["params"]
        self.batch_stats = variables.get("batch_stats", {})
        self.opt_state = tx.init(self.params)

        def loss_fn(params, batch_stats, x, y, rng):
            logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                          mutable=["batch_stats"], rngs={"dropout": rng})
            loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y).mean()
            return loss, updates.get("batch_stats", {})

        @partial(jax.jit, donate_argnums=(0, 1, 2))
        def train_step(params, batch_stats, opt_state, x, y, rng):
            (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats, x, y, rng)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), batch_stats, opt_state, loss

        self.train_step = train_step
        self.step_count = 0
        jax.block_until_ready(self.params)

    def prepare_data(self, cfg, dataset) -> None:
        jax, jnp = self.jax, self.jnp
        self.batches = None
        if dataset is None:
            kx, ky = jax.random.split(jax.random.PRNGKey(1))
            self.x = jax.random.normal(kx, (cfg.batch_size, cfg.image_size, cfg.image_size, 3), jnp.float32)
            self.y = jax.random.randint(ky, (cfg.batch_size,), 0, cfg.num_classes)
        else:
            from startbench.workload.data import batches

            self.batches = batches(dataset[0], dataset[1], cfg.batch_size)
            self.x, self.y = self._to_device(*next(self.batches))
        jax.block_until_ready((self.x, self.y))

    def _to_device(self, x, y):
        jnp = self.jnp
        return jnp.asarray(x, jnp.float32) / 127.5 - 1.0, jnp.asarray(y)

    def step(self) -> None:
        x, y = (self.x, self.y) if self.batches is None else self._to_device(*next(self.batches))
        rng = self.jax.random.fold_in(self.key, self.step_count)
        self.step_count += 1
        self.params, self.batch_stats, self.opt_state, loss = self.train_step(
            self.params, self.batch_stats, self.opt_state, x, y, rng)
        float(loss.block_until_ready())

    def memory_report(self) -> tuple[float | None, str | None]:
        """(peak MiB the framework allocated, a note on JAX's preallocation) on a GPU."""
        if self.device.platform != "gpu":
            return None, None
        try:
            stats = self.device.memory_stats() or {}
        except Exception:  # a backend without memory statistics
            stats = {}
        peak = stats.get("peak_bytes_in_use")
        return (peak / 2**20 if peak is not None else None), preallocation_note(os.environ, stats.get("bytes_limit"))

    def counted_flops_per_sample(self, cfg) -> float | None:
        return None
