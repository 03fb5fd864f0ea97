#!/usr/bin/python3
"""Writes the PyTorch ONNX fixtures of tests/onnx_torch.rs: a LeNet (MNIST-sized input, opset 11)
and a small ResNet built from torchvision's own blocks (BasicBlock, [1, 1, 1, 1]: the ResNet
stem with its padded max pool, identity and projection shortcuts) at widths 8-64 so the file
stays small (CIFAR-sized input, opset 17). Each model's fixed random inputs and PyTorch's logits
go to NAME.json next to NAME.onnx. Weights are PyTorch's random initialisation; batch-norm
statistics are randomised so that the fusion torch.onnx does in eval mode is not trivial.

Needs Debian's python3-torch and python3-torchvision (torch 1.13). Run from the repository root:
    /usr/bin/python3 scripts/torch-fixtures.py [--resnet18 OUT.onnx]
--resnet18 also writes torchvision's full resnet18 (num_classes=10, ~45 MB, not committed).
"""
import json
import sys

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, ResNet, conv1x1

OUT = "tests/fixtures/onnx"


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.drop(torch.relu(self.fc1(x)))
        return self.fc3(torch.relu(self.fc2(x)))


class SmallResNet(ResNet):
    """torchvision's ResNet with its widths 64-512 scaled down to 8-64: ResNet.__init__ fixes
    them, so the layers are rebuilt with ResNet's own _make_layer and BasicBlock."""

    def __init__(self, widths=(8, 16, 32, 64), num_classes=10):
        super().__init__(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_layer(BasicBlock, widths[0], 1)
        self.layer2 = self._make_layer(BasicBlock, widths[1], 1, stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], 1, stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], 1, stride=2)
        self.fc = nn.Linear(widths[3], num_classes)


def randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) - 0.5)


def write(name, model, shape, opset, out_dir=OUT):
    model.eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(x)
    path = f"{out_dir}/{name}.onnx"
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    with open(f"{out_dir}/{name}.json", "w") as f:
        json.dump({"torch": torch.__version__, "opset": opset, "input_shape": list(shape),
                   "input": x.flatten().tolist(), "logits": logits.flatten().tolist()}, f)
        f.write("\n")
    print(f"wrote {path} ({sum(p.numel() for p in model.parameters())} params)")


def main():
    torch.manual_seed(0)
    write("lenet", LeNet(), (4, 1, 28, 28), 11)
    resnet = SmallResNet()
    randomise_bn(resnet)
    write("resnet-tiny", resnet, (2, 3, 32, 32), 17)
    if "--resnet18" in sys.argv:
        import os
        from torchvision.models import resnet18
        out = sys.argv[sys.argv.index("--resnet18") + 1]
        full = resnet18(num_classes=10)
        randomise_bn(full)
        write(os.path.basename(out)[:-5], full, (2, 3, 32, 32), 13, out_dir=os.path.dirname(out) or ".")


if __name__ == "__main__":
    main()
