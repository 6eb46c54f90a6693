"""``vidrestore train``: a thin wrapper around ``vidrestore.train.loop.train`` (options to a config by
``vidrestore.train.config.train_config``)."""

from __future__ import annotations

import click

from vidrestore.config import PIXEL_LOSSES
from vidrestore.errors import UsageError


@click.command("train")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run folder: checkpoints, log.jsonl, final.safetensors.")
@click.option("--size", type=click.Choice(["tiny", "small", "default"]), default="small", show_default=True, help="Model size.")
@click.option("--steps", type=int, default=20000, show_default=True, help="Total optimizer steps of the run (over all resumed chunks).")
@click.option("--minutes", type=float, default=None, help="Time budget of this invocation; checkpoints and exports when spent.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=96, show_default=True, help="Training crop size in pixels.")
@click.option("--lr", type=float, default=4e-4, show_default=True, help="Peak learning rate (warmup, then cosine).")
@click.option("--warmup", type=int, default=300, show_default=True, help="Warmup steps.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out (starts fresh if there is none).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", default="auto", show_default=True, help="auto, fp32, bf16 or fp16 (autocast).")
@click.option("--textures", "textures", multiple=True, type=click.Path(exists=True), help="Images/videos (files or folders) for synthetic textures; repeatable. Default: procedural only.")
@click.option("--clips", type=click.Path(exists=True), default=None, help="Sharp ordinary-rate videos: interpolation samples.")
@click.option("--videos", type=click.Path(exists=True), default=None, help="High-frame-rate videos: Adobe240-style joint samples.")
@click.option("--mix", "mix", default=None, help="Data mix weights, e.g. synthetic=0.7,clips=0.3 (default: synthetic 1, clips 0.25, videos 0.5 when given).")
@click.option("--subframes", type=int, default=8, show_default=True, help="Synthetic sub-frames per input interval (>= 8, multiple of 8).")
@click.option("--max-speed", type=float, default=24.0, show_default=True, help="Largest synthetic motion, px per input interval.")
@click.option("--exposure", type=(float, float), default=(0.0, 1.0), show_default=True, metavar="MIN MAX", help="Synthetic exposure range, as a fraction of the frame interval (blur length = speed x exposure).")
@click.option("--sharp-prob", type=float, default=0.15, show_default=True, help="Share of synthetic samples with sharp inputs.")
@click.option("--noise", type=float, default=0.01, show_default=True, help="Largest std of the noise added to synthetic inputs (0: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-every", type=int, default=500, show_default=True)
@click.option("--val-count", type=int, default=16, show_default=True)
@click.option("--log-every", type=int, default=25, show_default=True)
@click.option("--ckpt-every", type=int, default=250, show_default=True)
@click.option("--init", "init", default=None, help="Start a fresh run from these weights (registry name or path): fine-tuning.")
@click.option("--key-weight", type=float, default=1.0, show_default=True, help="Loss weight of the key (deblurred) frame; in-between frames weigh 1.")
@click.option("--pixel-loss", type=click.Choice(PIXEL_LOSSES), default=PIXEL_LOSSES[0], show_default=True, help="Image loss: Charbonnier plus a Laplacian-pyramid term, or the per-frame PSNR itself (weighs nearly-sharp frames as a mean of PSNRs does).")
@click.option("--inter-weight", type=float, default=1.0, show_default=True, help="Loss weight of the in-between frames (0 with --flow-weight 0: they are not even computed, e.g. with --train-only key_branch).")
@click.option("--train-only", "train_only", multiple=True, metavar="PART", help="Train only this part of the network (a top-level module, e.g. key_branch); the rest stays frozen. Repeatable.")
@click.option("--clip-key-weight", type=float, default=None, help="Key-frame loss weight in --clips batches (their key input is its own target) [default: --key-weight]")
@click.option("--flow-weight", type=float, default=0.0, show_default=True, help="Loss weight of the flow term on synthetic batches: every flow stage's error against the scene's exact flows, in pixels (0: off).")
@click.option("--clip-flow-weight", type=float, default=0.0, show_default=True, help="Loss weight of the flow term on --clips batches, against classical DIS flows from the true in-between frame to both inputs (checked photometrically; 0: off).")
@click.option("--clip-scale", type=float, default=0.25, show_default=True, help="Scale at which --clips footage is decoded.")
@click.option("--holdout-frames", type=int, default=0, show_default=True, help="Never train on the first N frames of any video (clips, videos, texture videos): keeps an evaluation segment unseen.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch in this process (default: torch's choice).")
@click.option("--export", "export", type=click.Path(dir_okay=False), default=None, help="Where to export the weights (default: OUT/final.safetensors).")
def train(out, size, steps, minutes, batch, crop, lr, warmup, resume, device, precision, textures, clips, videos,
          mix, subframes, max_speed, exposure, sharp_prob, noise, seed, val_every, val_count, log_every, ckpt_every, init, key_weight, pixel_loss, inter_weight, train_only, clip_key_weight, flow_weight, clip_flow_weight, clip_scale, holdout_frames, threads, export) -> None:
    """Train a model on synthetic scenes and/or your footage.

    Synthetic scenes (textured layers with exact continuous motion, blur by averaging sub-frames) are
    always available; --clips adds interpolation samples from sharp ordinary footage, --videos adds
    Adobe240-style samples from your own high-frame-rate footage. Stop and resume at will: --minutes
    bounds one invocation, --resume continues it.
    """
    from vidrestore.train.config import train_config
    from vidrestore.train.loop import train as run_training

    if threads is not None:
        if threads < 1:
            raise UsageError("--threads must be >= 1")
        import torch

        torch.set_num_threads(threads)
    cfg = train_config(dict(
        out=out, size=size, steps=steps, minutes=minutes, batch=batch, crop=crop, lr=lr, warmup=warmup,
        resume=resume, device=device, precision=precision, textures=textures, clips=clips, videos=videos, mix=mix,
        subframes=subframes, max_speed=max_speed, exposure=exposure, sharp_prob=sharp_prob, noise=noise, seed=seed,
        val_every=val_every, val_count=val_count, log_every=log_every, ckpt_every=ckpt_every, export=export, init=init,
        clip_scale=clip_scale, holdout_frames=holdout_frames, clip_key_weight=clip_key_weight,
        clip_flow_weight=clip_flow_weight, key_weight=key_weight, inter_weight=inter_weight, flow_weight=flow_weight,
        pixel_loss=pixel_loss, train_only=train_only,
    ))
    result = run_training(cfg, echo=lambda line: click.echo(line))
    state = "finished" if result.finished else "paused (run again with --resume to continue)"
    click.echo(f"{state}: step {result.step}, weights {result.export_path}")
