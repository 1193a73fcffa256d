"""``vividzoo dataset ...``: check a dataset, make a toy one, render one from animated 3D assets, import
MV-Video, draw cameras over frames, encode a latent cache."""

from __future__ import annotations

import argparse

from .options import (
    device,
    existing_dir,
    existing_file,
    existing_path,
    float_range,
    float_span,
    int_range,
    non_negative_int,
    orbit_views,
    output_dir,
    output_file,
    positive_float,
    positive_int,
    seed,
    shard,
)


def register(commands: argparse._SubParsersAction) -> None:
    dataset = commands.add_parser("dataset", help="make, render, import, check and cache training datasets")
    actions = dataset.add_subparsers(dest="dataset_command", required=True)
    check = actions.add_parser("check", help="report every problem of a dataset before training")
    check.add_argument("directory", type=existing_dir)
    check.add_argument(
        "--views", type=positive_int, default=4, help="views per training sample (default 4, orthogonal)"
    )
    check.add_argument("--frames", type=positive_int, default=16, help="frames per training sample (default 16)")
    check.add_argument("--stride", type=positive_int, default=3, help="frame stride of a training sample (default 3)")
    check.add_argument("--quick", action="store_true", help="do not decode every image (nor check the cameras)")
    check.add_argument("--mvdream", type=existing_file, help="also report latent caches not made from this checkpoint")
    check.add_argument("--image-size", type=int_range(8), default=256,
                       help="with --mvdream: the training image size the caches must have (default 256)")
    check.set_defaults(handler=_check)
    toy = actions.add_parser("make-toy", help="a small synthetic dataset of moving shapes with exact camera poses")
    toy.add_argument("directory", type=output_dir)
    toy.add_argument("--objects", type=positive_int, default=6)
    toy.add_argument(
        "--views", type=positive_int, default=8, help="azimuths rendered (a multiple of 4 gives orthogonal views)"
    )
    toy.add_argument(
        "--frames", type=positive_int, default=48, help="frames per view (48 allows 16 frames at stride 3)"
    )
    toy.add_argument("--size", type=int_range(8, multiple=8), default=64, help="image size in pixels")
    toy.add_argument("--seed", type=seed, default=0)
    toy.set_defaults(handler=_make_toy)
    encode = actions.add_parser("encode", help="cache VAE latents and caption embeddings: training then skips both")
    encode.add_argument("directory", type=existing_dir)
    encode.add_argument("--mvdream", type=existing_file, required=True, help="the MVDream checkpoint training uses")
    encode.add_argument("--image-size", type=int_range(8), default=256, help="training image size (default 256)")
    encode.add_argument("--shard", type=shard, default=(0, 1), help="I/N: encode the I-th of N parts (0-based)")
    encode.add_argument("--device", type=device, default="auto", help="auto (CUDA when present), cuda, cuda:N, cpu")
    encode.add_argument("--chunk", type=positive_int, default=16, help="frames per VAE call (default 16)")
    encode.set_defaults(handler=_encode)
    mv_video = actions.add_parser("from-mv-video", help="a dataset of links to a downloaded MV-Video (Animate3D)")
    mv_video.add_argument("videos", type=existing_dir, help="the extracted videos/ folder (<uid>/<anim>/view_<k>.mp4)")
    mv_video.add_argument("--info", type=existing_file, required=True, help="MV-Video's uid_info_dict.json")
    mv_video.add_argument("--out", type=output_dir, required=True, help="the dataset folder to write")
    mv_video.add_argument("--only", type=existing_file, help="import only these uids (high_quality_uid.txt)")
    mv_video.set_defaults(handler=_from_mv_video)
    overlay = actions.add_parser(
        "camera-overlay", help="draw the visual hull carved through cameras.json, the centre and up axis over each view"
    )
    overlay.add_argument("object", type=existing_dir, help="one object folder of a dataset")
    overlay.add_argument("--out", type=output_file, required=True, help="the picture to write (.png)")
    overlay.add_argument("--frame", type=non_negative_int, default=0, help="which frame of each view (default 0)")
    overlay.add_argument("--size", type=positive_int, default=256, help="pixels per view (default 256)")
    overlay.add_argument("--radius", type=positive_float,
                         help="camera distance from the centre (default: the object's render.json, else 2.4)")
    overlay.add_argument("--fov", type=positive_float,
                         help="vertical field of view in degrees (default: the object's render.json, else 40)")
    overlay.set_defaults(handler=_camera_overlay)
    _add_render_command(actions)


def _add_render_command(actions: argparse._SubParsersAction) -> None:
    from ..data.render.settings import DEVICES, ENGINES, RenderSettings

    default = RenderSettings()
    render = actions.add_parser("render", help="render animated 3D assets (.glb .gltf .fbx .blend) with Blender")
    render.add_argument("assets", nargs="+", type=existing_path, help="asset files or folders of them")
    render.add_argument("--out", type=output_dir, required=True, help="dataset folder to write")
    render.add_argument(
        "--captions", type=existing_file, help="CSV of uid,caption or JSON {uid: caption}; uid = file stem"
    )
    render.add_argument("--views", type=orbit_views, default=default.views, help="azimuths per object (default 24)")
    render.add_argument("--elevation", type=float_span(-89.0, 89.0), default=default.elevation,
                        help="degrees, fixed (20) or drawn per object from a range (default 15:30)")
    render.add_argument("--fps", type=positive_int, default=default.fps, help="frames per second sampled (default 24)")
    render.add_argument("--max-frames", type=positive_int, default=default.max_frames,
                        help="frames per object; longer animations keep their beginning (default 48)")
    render.add_argument(
        "--resolution", type=int_range(16, 4096), default=default.resolution, help="pixels (default 512)"
    )
    render.add_argument("--engine", choices=ENGINES, default=default.engine)
    render.add_argument(
        "--device", choices=DEVICES, default=default.device, help="gpu: OptiX, CUDA, HIP, oneAPI or Metal"
    )
    render.add_argument("--samples", type=positive_int, default=default.samples, help="samples per pixel (default 64)")
    render.add_argument("--no-denoise", dest="denoise", action="store_false", help="turn Cycles' denoiser off")
    render.add_argument("--radius", type=positive_float, default=default.radius, help="camera distance (default 2.4)")
    render.add_argument("--fov", type=float_range(1.0, 120.0), default=default.fov_degrees,
                        help="field of view in degrees (default 40)")
    render.add_argument(
        "--seed", type=non_negative_int, default=default.seed, help="draws of elevation and azimuth start, render noise"
    )
    render.add_argument(
        "--shard", type=shard, default=(0, 1), help="I/N: render part I (0..N-1) of N, e.g. per job-array task"
    )
    render.add_argument("--workers", type=positive_int, default=1, help="assets rendered at once (default 1)")
    render.add_argument("--timeout", type=positive_float, default=3600.0, help="seconds per asset (default 3600)")
    render.set_defaults(handler=_render)


def _check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.camera_check import check_objects, summary
    from ..data.latents import CacheKey, cache_problems
    from ..data.reader import clip_span, scan_dataset

    frames_needed = clip_span(args.frames, args.stride)
    with tqdm(unit="image", desc="decoding", disable=args.quick) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = scan_dataset(args.directory, args.views, frames_needed, not args.quick, progress)
    if not args.quick:
        with tqdm(unit="object", desc="camera check") as bar:  # progress() updates this bar now
            agreements = check_objects(report.objects, progress)
        report.problems += [problem for agreement in agreements if (problem := agreement.problem())]
        print(summary(agreements))
    cache = cache_problems(report.objects, CacheKey.of(args.mvdream, args.image_size) if args.mvdream else None)
    if cache is not None:
        usable, problems = cache
        report.problems += problems
        print(f"latent cache: {usable} of {len(report.objects)} objects have a usable one")
    print(report.summary())
    try:
        print(f"recorded what was found in {report.save_manifest()}: training starts from it without reading "
              f"the unchanged objects again")
    except OSError as error:
        print(f"could not write the manifest ({error}); training will read every object's files")
    return 1 if report.problems else 0


def _make_toy(args: argparse.Namespace) -> int:
    from ..data.toy import make_toy_dataset

    folders = make_toy_dataset(args.directory, args.objects, args.views, args.frames, args.size, seed=args.seed)
    print(
        f"wrote {len(folders)} objects ({args.views} views x {args.frames} frames, {args.size} px) to {args.directory}"
    )
    return 0


def _render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.render.batch import BatchSummary, find_assets, load_captions, render_assets, require_bpy, select_assets
    from ..data.render.settings import RenderSettings
    from ..data.shards import Shard

    require_bpy()
    settings = RenderSettings(args.views, args.elevation, args.fps, args.max_frames, args.resolution, args.engine,
                              args.device, args.samples, args.denoise, args.radius, args.fov, args.seed)
    part = Shard(*args.shard)
    assets = find_assets(args.assets)
    captions = load_captions(args.captions) if args.captions else {}
    args.out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(select_assets(part, assets)), unit="asset", desc=f"rendering shard {part}") as bar:
        def progress(summary: BatchSummary) -> None:
            bar.n = len(summary.skipped) + summary.attempted
            bar.set_postfix(
                images_per_s=f"{summary.images / max(summary.seconds, 1e-9):.2f}", failed=len(summary.failed)
            )

        summary = render_assets(assets, args.out, settings, captions, part, args.workers, args.timeout, progress)
    print(summary.line())
    return 0


def _from_mv_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.mv_video import import_mv_video

    with tqdm(unit="animation", desc="linking") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = import_mv_video(args.videos, args.info, args.out, args.only, on_progress=progress)
    print(summary.text())
    return 1 if summary.problems else 0


def _camera_overlay(args: argparse.Namespace) -> int:
    from ..data.overlay import camera_overlay

    picture = camera_overlay(args.object, args.size, args.frame, args.radius, args.fov)
    picture.save(args.out)
    print(f"wrote {args.out}: cyan = outline of the visual hull of all views, magenta = silhouette it does not "
          f"cover (right cameras leave none), red dot = object centre, green line = world up axis")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.latents import LatentEncoder, encode_dataset, shard_objects
    from ..data.reader import scan_dataset
    from ..devices import resolve_device
    from ..diffusers_host import quiet_diffusers

    report = scan_dataset(args.directory, views=1, frames_needed=1, decode_images=False, use_manifest=True)
    if report.problems:
        print(f"skipping {len(report.problems)} problems (`vividzoo dataset check {args.directory}` lists them)")
    index, count = args.shard
    objects = shard_objects(report.objects, index, count)
    quiet_diffusers()
    encoder = LatentEncoder(args.mvdream, args.image_size, resolve_device(args.device), args.chunk)
    with tqdm(total=len(objects), unit="object", desc=f"encoding shard {index}/{count}") as bar:
        encoded, done_before = encode_dataset(objects, encoder, lambda done, total: bar.update(done - bar.n))
    print(f"encoded {encoded} objects, {done_before} were already encoded (shard {index}/{count} of "
          f"{len(report.objects)} objects)")
    return 0
