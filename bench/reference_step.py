"""The earlier PyTorch project's training step, timed as bench/throughput.py times
this project's (figures, not a test).

    pip install torch
    python bench/reference_step.py [--steps=10] [--batch_size=128]

Builds the reference's tower as its paper and code describe it (the CIFAR
ResNet56: 16-32-64 channels, nine basic blocks a stage, option-A shortcuts that
subsample and zero-pad, He-normal convolutions, global average pooling) and its
step: the tower called three times on a batch of anchor, positive and negative
images, the cosine triplet loss with margin 0.3, Adam at 1e-3, float32, in
PyTorch's default threads. On random images: the step's arithmetic does not
depend on them. Prints one JSON line: the median step over `--steps` steps after
two warm-up steps, and the tower images per second it makes (three a triplet),
beside `bench/throughput.py --objectives=triplet --synthetic`'s line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from absl import app, flags

_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after two warm-up steps).")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Triplets a step (the reference's 128).")
_DEPTH = flags.DEFINE_integer("depth", 56, "ResNet depth: 6n + 2.")


def _tower(depth: int):
    import torch
    from torch import nn
    from torch.nn import functional

    class Block(nn.Module):
        def __init__(self, channels_in: int, channels: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
            self.norm1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
            self.norm2 = nn.BatchNorm2d(channels)
            self.pad = (channels - channels_in) // 2 if stride != 1 else None

        def forward(self, x):
            y = self.norm2(self.conv2(functional.relu(self.norm1(self.conv1(x)))))
            if self.pad is not None:  # option A: subsample, zero-pad the new channels
                x = functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            return functional.relu(y + x)

    class Tower(nn.Module):
        def __init__(self, blocks: int):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.norm = nn.BatchNorm2d(16)
            stages, channels_in = [], 16
            for channels, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(blocks):
                    stages.append(Block(channels_in, channels, stride if i == 0 else 1))
                    channels_in = channels
            self.stages = nn.Sequential(*stages)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight)

        def forward(self, x):
            y = self.stages(functional.relu(self.norm(self.conv(x))))
            return torch.flatten(functional.adaptive_avg_pool2d(y, 1), 1)

    return Tower((depth - 2) // 6)


def main(argv: list[str]) -> None:
    del argv
    try:
        import torch
        from torch.nn import functional
    except ImportError:
        print("error: the reference's step runs in PyTorch: pip install torch.", file=sys.stderr)
        sys.exit(1)
    torch.manual_seed(0)
    tower = _tower(_DEPTH.value)
    tower.train()
    optimizer = torch.optim.Adam(tower.parameters(), lr=1e-3)
    anchor, positive, negative = (torch.randn(_BATCH.value, 3, 32, 32) for _ in range(3))

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad()
        a, p, n = tower(anchor), tower(positive), tower(negative)
        similarity = functional.cosine_similarity
        loss = functional.relu(similarity(a, n) - similarity(a, p) + 0.3).mean()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    for _ in range(2):
        step()
    seconds = statistics.median(step() for _ in range(_STEPS.value))
    line = {
        "model": f"reference resnet{_DEPTH.value}, pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": _BATCH.value,
        "images_per_step": 3 * _BATCH.value,
        "median_step_seconds": round(seconds, 4),
        "tower_images_per_second": round(3 * _BATCH.value / seconds, 1),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    app.run(main)
