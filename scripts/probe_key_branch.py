"""Diagnostic: can the key (deblurring) branch learn when it is trained alone?

Trains only the key-frame loss on synthetic batches, starting from given weights, with every
parameter frozen except the chosen part, and prints the fixed-seed validation key PSNR (the set
`vidrestore train` logs) as it goes. Not part of the package; an experiment whose numbers the
development notes quote.

    python scripts/probe_key_branch.py --weights vidrestore-small-v3 --steps 1500 --lr 1e-3 --val-every 300
    python scripts/probe_key_branch.py --train all --steps 600 --lr 3e-4 --val-every 200
    python scripts/probe_key_branch.py --train plain-cnn --steps 800 --lr 5e-4 --val-every 200
    python scripts/probe_key_branch.py --steps 1500 --lr 1e-3 --val-every 300 --exposure 0.75 1.0 --sharp-prob 0 --noise 0

``--train plain-cnn`` trains a plain full-resolution CNN instead (input F(i-1), F(i), F(i+1)
stacked, 9 channels; 8 layers of 3x3 convolutions, 32 channels, 6 of them dilated; a residual on
F(i)): a reference for how fast the key task can be learnt at all on this data.
"""

from __future__ import annotations

import argparse
import time

import torch

from vidrestore.train.losses import image_loss, psnr
from vidrestore.synth.scenes import SceneConfig, render_batch, validation_set
from vidrestore.weights import load_model


class PlainCNN(torch.nn.Module):
    """Reference deblurrer: F(i) + CNN(F(i-1), F(i), F(i+1)) at full resolution."""

    def __init__(self, c: int = 32, depth: int = 6) -> None:
        super().__init__()
        act = torch.nn.LeakyReLU(0.1)
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(9, c, 3, padding=1), act]
        for _ in range(depth):
            layers += [torch.nn.Conv2d(c, c, 3, padding=2, dilation=2), act]
        layers.append(torch.nn.Conv2d(c, 3, 3, padding=1))
        self.body = torch.nn.Sequential(*layers)

    def key(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, 1] + self.body(torch.cat((inputs[:, 0], inputs[:, 1], inputs[:, 2]), dim=1) - 0.5)


def predict_key(model, inputs: torch.Tensor) -> torch.Tensor:
    if isinstance(model, PlainCNN):
        return model.key(inputs)
    frames = [inputs[:, i] for i in range(4)]
    feats = [model.encode(f) for f in frames]
    key, _ = model.restore(frames, feats, torch.zeros(inputs.shape[0], 0), with_key=True)
    return key


def val_key_psnr(model, samples) -> tuple[float, float]:
    """Mean key PSNR of the model and of the blurry input over the validation samples."""
    got, blurry = [], []
    with torch.no_grad():
        for s in samples:
            key = predict_key(model, s.inputs)
            got.append(float(psnr(key, s.key).mean()))
            blurry.append(float(psnr(s.inputs[:, 1], s.key).mean()))
    return sum(got) / len(got), sum(blurry) / len(blurry)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="vidrestore-small-v3")
    ap.add_argument("--train", choices=("key_branch", "all", "plain-cnn"), default="key_branch")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--max-speed", type=float, default=32.0)
    ap.add_argument("--exposure", type=float, nargs=2, default=(0.0, 1.0), metavar=("MIN", "MAX"),
                    help="training exposure range, as a fraction of the frame interval")
    ap.add_argument("--sharp-prob", type=float, default=0.15, help="share of sharp training inputs")
    ap.add_argument("--noise", type=float, default=0.01, help="max std of the training inputs' noise")
    ap.add_argument("--val-every", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    model = PlainCNN() if args.train == "plain-cnn" else load_model(args.weights)
    for name, p in model.named_parameters():
        p.requires_grad_(args.train != "key_branch" or name.startswith("key_branch."))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    cfg = SceneConfig(height=args.crop, width=args.crop, max_speed=args.max_speed, reference_size=args.crop,
                      exposure=tuple(args.exposure), sharp_prob=args.sharp_prob, noise=args.noise)
    val = validation_set()
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.monotonic()
    model.eval()
    k, b = val_key_psnr(model, val)
    print(f"step 0: val key {k:.2f} dB (blurry {b:.2f}); training {args.train}, {sum(p.numel() for p in params)} values")
    model.train()
    window = 0.0
    for step in range(1, args.steps + 1):
        s = render_batch(cfg, args.batch, g, "cpu", None, times=torch.zeros(0))
        loss = image_loss(predict_key(model, s.inputs), s.key)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window += float(loss.detach())
        if step % args.val_every == 0 or step == args.steps:
            model.eval()
            k, b = val_key_psnr(model, val)
            model.train()
            print(f"step {step}: loss {window / args.val_every:.4f} val key {k:.2f} dB (blurry {b:.2f}) "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
            window = 0.0


if __name__ == "__main__":
    main()
