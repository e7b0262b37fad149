"""Command line of f7tbuild: standins, build, clean-images, lint, publish, bench."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from f7tbuild import ca, catalogue, engine
from f7tbuild.housekeeping import BUILD_KEEP, CLEAN_KEEP
from f7tbuild.output import status, warn


def _add_ca_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ca-bundle",
        metavar="PATH",
        help="extra CA bundle for build steps (default: F7T_CA_BUNDLE, SSL_CERT_FILE, PIP_CERT)",
    )
    p.add_argument("--no-ca", action="store_true", help="serve no extra CA bundle to the build")


def _count(text: str) -> int:
    """A whole number >= 0 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    top = argparse.ArgumentParser(prog="python -m f7tbuild", description=__doc__)
    top.add_argument("--catalogue", type=Path, help="catalogue.toml (default: the repo's)")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("standins", help="make stand-in base images from Debian packages")
    p.add_argument("kinds", nargs="*", help="stand-in kinds (default: all in the catalogue)")
    p.add_argument("--rebuild", action="store_true", help="remake even if they exist")
    p.add_argument(
        "--rebuild-rootfs", action="store_true", help="also redo debootstrap + docker import"
    )
    _add_ca_options(p)

    p = sub.add_parser("build", help="build images, then run their checks")
    p.add_argument("images", nargs="*", default=["all"], help="image, variant or 'all'")
    p.add_argument("--rebuild", action="store_true", help="remake stand-in bases too")
    p.add_argument("--no-cache", action="store_true", help="docker build --no-cache")
    p.add_argument("--no-checks", action="store_true", help="skip the testinfra checks")
    p.add_argument(
        "--base",
        choices=["auto", "real", "standin"],
        default="auto",
        help="auto: real base if present or pullable, else stand-in (default)",
    )
    p.add_argument("--pull-timeout", type=float, default=20.0, help="seconds for docker pull")
    p.add_argument(
        "--keep-builds",
        type=_count,
        default=BUILD_KEEP,
        metavar="N",
        help="after a successful build, remove all but the N newest local builds of each "
        f"image (default {BUILD_KEEP}; 0 keeps every build)",
    )
    _add_ca_options(p)

    p = sub.add_parser(
        "clean-images",
        help="remove earlier local builds of our images (and their untagged leftovers), "
        "keeping the newest per image; stand-in bases and images in use are left",
    )
    p.add_argument(
        "--keep",
        type=_count,
        default=CLEAN_KEEP,
        metavar="N",
        help=f"builds kept per image, newest first (default {CLEAN_KEEP}; 0 keeps all)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")

    p = sub.add_parser(
        "build-emulated",
        help="build and check images for a foreign platform under qemu, then push both "
        "platforms to a loopback registry as one multi-arch index each and inspect it",
    )
    p.add_argument("images", nargs="*", default=["all"], help="image, variant or 'all'")
    p.add_argument("--platform", default="linux/arm64", help="default: linux/arm64")
    p.add_argument("--rebuild", action="store_true", help="remake the stand-in bases too")
    p.add_argument(
        "--rebuild-rootfs", action="store_true", help="debootstrap again (ignore the cache)"
    )
    p.add_argument("--no-cache", action="store_true", help="docker build --no-cache")
    p.add_argument("--no-checks", action="store_true", help="skip the checks (then no index)")
    p.add_argument("--no-index", action="store_true", help="build and check only")
    p.add_argument("--out", type=Path, help="timings and publish files (default: build/multiarch)")
    _add_ca_options(p)

    sub.add_parser("lock", help="regenerate the hub's hashed lock (f7tbuild.lock)")

    p = sub.add_parser("lint", help="hadolint, shellcheck and ruff")
    p.add_argument("paths", nargs="*", help="(ignored: lint always covers the whole repo)")

    p = sub.add_parser(
        "publish",
        help="push checked builds (never stand-in ones) with their digests, manifests, SBOMs",
    )
    p.add_argument("images", nargs="*", default=["all"])
    p.add_argument(
        "--registry", help="HOST[:PORT]/NAMESPACE to push to (default: the catalogue's registry)"
    )
    p.add_argument(
        "--out", type=Path, help="where digests, manifests and SBOMs go (default: build/publish)"
    )
    p.add_argument(
        "--sign",
        metavar="KEY",
        help="cosign each pushed digest: a key file/KMS URI (COSIGN_PASSWORD), or 'keyless'",
    )
    p.add_argument(
        "--platform",
        help="a release's per-platform push (linux/amd64, linux/arm64): only the sha tag "
        "with the architecture appended; `index` assembles the tags",
    )
    p.add_argument("--dry-run", action="store_true", help="print the pushes, do not push")

    p = sub.add_parser(
        "index", help="assemble multi-arch indexes from per-platform publish results"
    )
    p.add_argument("results", nargs="+", type=Path, help="published.json files or their dirs")
    p.add_argument("--sign", metavar="KEY", help="cosign each index digest (key or 'keyless')")
    p.add_argument("--out", type=Path, help="write indexes.json here (default: build/publish)")
    p.add_argument(
        "--inspect",
        action="store_true",
        help="then pull each platform of each index and run it (uname -m; foreign ones "
        "under qemu: scripts/emulation-setup.sh)",
    )

    p = sub.add_parser("bench", help="cold/warm build times and image sizes")
    p.add_argument("images", nargs="*", default=["all"])
    p.add_argument("--output", type=Path, help="also append the table to this markdown file")
    _add_ca_options(p)
    return top


def _bundle(args: argparse.Namespace) -> Path | None:
    choice = ca.choose_bundle(args.ca_bundle, args.no_ca)
    status(f"build CA bundle: {choice.path or 'none'} ({choice.reason})")
    return choice.path


def _clean_images(cat: catalogue.Catalogue, keep: int, dry_run: bool) -> int:
    """``clean-images``: housekeeping by hand, each image named."""
    from f7tbuild.housekeeping import current_refs, describe, housekeep, our_repositories

    result = housekeep(
        our_repositories(cat.families()), keep, protect=current_refs(cat.targets), dry_run=dry_run
    )
    for item in result.removed:
        status(f"{'would remove' if dry_run else 'removed'} {describe(item)}")
    for left in result.skipped:
        warn(f"left {describe(left)}: {left.reason}")
    status(result.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lock"]:
        from f7tbuild.lock import main as lock_main

        return lock_main(argv[1:])
    args = parser().parse_args(argv)
    try:
        cat = catalogue.load(args.catalogue)
        if args.command == "lint":
            from f7tbuild.lint import lint

            return lint()
        if args.command == "publish":
            from f7tbuild.publish import DEFAULT_OUT, publish

            engine.require_engine()
            publish(
                cat,
                args.images,
                registry=args.registry,
                out_dir=args.out or DEFAULT_OUT,
                dry_run=args.dry_run,
                sign_key=args.sign,
                platform=args.platform,
            )
            return 0
        if args.command == "index":
            from f7tbuild.index import assemble, write_summary
            from f7tbuild.publish import DEFAULT_OUT

            indexes = assemble(args.results)
            if args.inspect:
                from f7tbuild.crossbuild import inspect_published
                from f7tbuild.index import load_entries

                inspect_published(indexes, load_entries(args.results))
            if args.sign:
                from f7tbuild.sign import attach_sbom, sign

                for index in indexes:
                    sign(index.ref, args.sign)
                    for platform, digest in index.platforms.items():
                        attach_sbom(
                            f"{index.repository}@{digest}", Path(index.sboms[platform]), args.sign
                        )
                    status(f"[index] signed {index.ref}; SBOMs attached to each platform")
            status(f"indexes: {write_summary(args.out or DEFAULT_OUT, indexes)}")
            return 0
        status(f"Docker engine {engine.require_engine()}")
        if args.command == "standins":
            from f7tbuild.standin import make_standins

            refs = make_standins(
                cat,
                args.kinds,
                rebuild=args.rebuild,
                ca_bundle=_bundle(args),
                rebuild_rootfs=args.rebuild_rootfs,
            )
            status("stand-ins ready: " + ", ".join(refs))
            return 0
        if args.command == "build":
            from f7tbuild.build import BuildOptions, build_all

            opts = BuildOptions(
                base=args.base,
                rebuild=args.rebuild,
                no_cache=args.no_cache,
                checks=not args.no_checks,
                pull_timeout=args.pull_timeout,
                ca_bundle=_bundle(args),
                keep_builds=args.keep_builds,
            )
            return build_all(cat, args.images, opts)
        if args.command == "clean-images":
            return _clean_images(cat, args.keep, args.dry_run)
        if args.command == "build-emulated":
            from f7tbuild.build import BuildOptions
            from f7tbuild.crossbuild import DEFAULT_OUT as MULTIARCH_OUT
            from f7tbuild.crossbuild import run as cross_run

            opts = BuildOptions(
                rebuild=args.rebuild,
                no_cache=args.no_cache,
                checks=not args.no_checks,
                ca_bundle=_bundle(args),
                rebuild_rootfs=args.rebuild_rootfs,
            )
            return cross_run(
                cat, args.images, args.platform, opts, index=not args.no_index,
                out_dir=args.out or MULTIARCH_OUT,
            )
        if args.command == "bench":
            from f7tbuild.bench import bench

            return bench(cat, args.images, ca_bundle=_bundle(args), output=args.output)
    except (catalogue.CatalogueError, engine.EngineError, ca.CAError) as exc:
        print(f"f7tbuild: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"f7tbuild: error: {exc}", file=sys.stderr)
        return 1
    return 2
