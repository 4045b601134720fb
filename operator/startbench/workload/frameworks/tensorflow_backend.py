"""TensorFlow backend (Keras 3): ResNet18, ResNet50 and AlexNet defined here after torchvision's
architectures, SGD with momentum, a tf.function training step.

keras.applications.ResNet50 is not used: it is ResNet v1 (stride on the first 1x1 convolution, about 5 %
fewer FLOPs than torchvision's v1.5) and Keras has no ResNet18 or AlexNet; the same architectures in
every framework keep throughput and TFLOPS comparable, and perf.formula_flops_per_sample counts them.
Precision: fp32 turns TF32 off (TensorFlow enables it by default on Ampere and later), tf32 on; bf16 and
fp16 use Keras mixed-precision policies (fp16 with a loss-scale optimiser). AlexNet's adaptive 6x6
pooling is a bilinear resize when the feature map is not 6x6: exact for the 1x1 map of 64x64 inputs
(a copy) and not needed for the 6x6 map of 224x224 inputs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from startbench.workload.frameworks import cpu_count, cpu_name


def preallocation_note(env: Mapping[str, str]) -> str:
    """What NVML's memory figure means under TensorFlow's allocator settings (pure: reads `env` only)."""
    if env.get("TF_FORCE_GPU_ALLOW_GROWTH", "").strip().lower() == "true":
        return ("TensorFlow memory growth on (TF_FORCE_GPU_ALLOW_GROWTH=true): mem_used_max_mib follows the "
                "allocator; framework_mem_peak_mib is get_memory_info's peak")
    return ("TensorFlow reserves nearly all GPU memory at start: mem_used_max_mib shows that reservation; "
            "framework_mem_peak_mib is get_memory_info's peak (TF_FORCE_GPU_ALLOW_GROWTH=true turns it off)")


def _resnet(keras, image_size: int, num_classes: int, bottleneck: bool):
    """torchvision's ResNet18 (basic blocks) or ResNet50 v1.5 (bottlenecks, stride on the 3x3)."""
    L = keras.layers
    blocks = (3, 4, 6, 3) if bottleneck else (2, 2, 2, 2)
    expansion = 4 if bottleneck else 1

    def bn(x, zero=False):
        return L.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer="zeros" if zero else "ones")(x)

    def conv(x, filters, k, stride=1):
        return L.Conv2D(filters, k, stride, padding="same", use_bias=False)(x)

    inp = keras.Input((image_size, image_size, 3))
    x = L.MaxPooling2D(3, 2, padding="same")(L.ReLU()(bn(conv(inp, 64, 7, 2))))
    for stage, count in enumerate(blocks):
        planes = 64 * 2**stage
        for b in range(count):
            stride = 2 if stage > 0 and b == 0 else 1
            if bottleneck:
                y = L.ReLU()(bn(conv(x, planes, 1)))
                y = L.ReLU()(bn(conv(y, planes, 3, stride)))
                y = bn(conv(y, planes * 4, 1), zero=True)
            else:
                y = L.ReLU()(bn(conv(x, planes, 3, stride)))
                y = bn(conv(y, planes, 3), zero=True)
            if stride != 1 or x.shape[-1] != planes * expansion:
                x = bn(conv(x, planes * expansion, 1, stride))
            x = L.ReLU()(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(num_classes, dtype="float32")(x)
    return keras.Model(inp, out, name="resnet50" if bottleneck else "resnet18")


def _alexnet(keras, image_size: int, num_classes: int):
    L = keras.layers
    inp = keras.Input((image_size, image_size, 3))
    x = L.Conv2D(64, 11, 4, activation="relu")(L.ZeroPadding2D(2)(inp))
    x = L.MaxPooling2D(3, 2)(x)
    x = L.MaxPooling2D(3, 2)(L.Conv2D(192, 5, padding="same", activation="relu")(x))
    x = L.Conv2D(384, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(256, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D(3, 2)(L.Conv2D(256, 3, padding="same", activation="relu")(x))
    if x.shape[1] != 6 or x.shape[2] != 6:
        x = L.Resizing(6, 6, interpolation="bilinear")(x)
    x = L.Dropout(0.5)(L.Flatten()(x))
    x = L.Dropout(0.5)(L.Dense(4096, activation="relu")(x))
    x = L.Dense(4096, activation="relu")(x)
    out = L.Dense(num_classes, dtype="float32")(x)
    return keras.Model(inp, out, name="alexnet")


class TensorFlowBackend:
    name = "tensorflow"

    def import_framework(self) -> dict[str, str]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        import keras
        import tensorflow as tf

        self.tf, self.keras = tf, keras
        return {"tensorflow": tf.__version__, "keras": keras.__version__}

    def init_device(self, want: str) -> dict:
        tf = self.tf
        if want == "cpu":
            tf.config.set_visible_devices([], "GPU")
        gpus = tf.config.list_physical_devices("GPU") if want != "cpu" else []
        if want == "gpu" and not gpus:
            raise RuntimeError("--device gpu: TensorFlow sees no GPU (tensorflow-cpu, or no GPU visible to this "
                               "container); use --device auto or cpu")
        self.device_name = "/GPU:0" if gpus else "/CPU:0"
        with tf.device(self.device_name):
            float(tf.reduce_sum(tf.ones(16) * 2).numpy())
        if gpus:
            # The runner finds this device in NVML (workload/gpu.py): TensorFlow gives no UUID; it is ordinal 0.
            details = tf.config.experimental.get_device_details(gpus[0])
            return {"kind": "gpu", "name": details.get("device_name"), "count": len(gpus), "ordinal": 0}
        return {"kind": "cpu", "name": cpu_name(), "count": cpu_count()}

    def build_model(self, cfg) -> None:
        tf, keras = self.tf, self.keras
        tf.config.experimental.enable_tensor_float_32_execution(cfg.precision == "tf32")
        keras.mixed_precision.set_global_policy(
            {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}.get(cfg.precision, "float32"))
        with tf.device(self.device_name):
            if cfg.model in ("resnet18", "resnet50"):
                model = _resnet(keras, cfg.image_size, cfg.num_classes, bottleneck=cfg.model == "resnet50")
            elif cfg.model == "alexnet":
                model = _alexnet(keras, cfg.image_size, cfg.num_classes)
            else:
                raise ValueError(f"unknown model {cfg.model!r}")
            optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
            if cfg.precision == "fp16":
                optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
            optimizer.build(model.trainable_variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        scaled = cfg.precision == "fp16"

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, tf.cast(logits, tf.float32))
                target = optimizer.scale_loss(loss) if scaled else loss
            grads = tape.gradient(target, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        self.model, self.train_step = model, train_step

    def prepare_data(self, cfg, dataset) -> None:
        tf = self.tf
        self.batches = None
        with tf.device(self.device_name):
            if dataset is None:
                g = tf.random.Generator.from_seed(0)
                self.x = g.normal((cfg.batch_size, cfg.image_size, cfg.image_size, 3))
                self.y = g.uniform((cfg.batch_size,), 0, cfg.num_classes, dtype=tf.int32)
            else:
                from startbench.workload.data import batches

                self.batches = batches(dataset[0], dataset[1], cfg.batch_size)
                self.x, self.y = self._to_device(*next(self.batches))
            float(tf.reduce_sum(self.x).numpy())

    def _to_device(self, x, y):
        tf = self.tf
        with tf.device(self.device_name):
            return tf.cast(tf.constant(x), tf.float32) / 127.5 - 1.0, tf.constant(y)

    def step(self) -> None:
        x, y = (self.x, self.y) if self.batches is None else self._to_device(*next(self.batches))
        with self.tf.device(self.device_name):
            float(self.train_step(x, y).numpy())  # .numpy() waits for the step to finish

    def memory_report(self) -> tuple[float | None, str | None]:
        """(peak MiB the framework allocated, a note on TensorFlow's reservation) on a GPU."""
        if self.device_name != "/GPU:0":
            return None, None
        try:
            peak = self.tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        except Exception:
            peak = None
        return peak, preallocation_note(os.environ)

    def counted_flops_per_sample(self, cfg) -> float | None:
        return None
