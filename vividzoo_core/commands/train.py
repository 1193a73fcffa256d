"""``vividzoo train``."""

from __future__ import annotations

import argparse

from ..errors import VividZooError
from .options import existing_file, resume_from


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train the alignment layers (accelerate launch for several GPUs)")
    train.add_argument("--config", type=existing_file, help="TOML or JSON training config")
    train.add_argument("--resume", type=resume_from, default="auto",
                       help="auto (the newest checkpoint in output_dir, default), none, or a checkpoint folder")
    train.add_argument("--example-config", action="store_true", help="print a config with the paper's settings")
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..training.config import example_config, load_config

    if args.example_config:
        print(example_config(), end="")
        return 0
    if args.config is None:
        raise VividZooError("train needs --config FILE (start from `vividzoo train --example-config`)")
    from ..diffusers_host import quiet_diffusers
    from ..training.trainer import Trainer

    quiet_diffusers()
    trainer = Trainer(load_config(args.config))
    try:
        trainer.train(resume=None if args.resume == "none" else args.resume)
    except KeyboardInterrupt:
        print(f"stopped; resume with: vividzoo train --config {args.config}")
        return 130
    return 0
