"""Peak memory of ``analyze`` on an 8192 × 8192 float32 dask image (limit 1.5 GB).

The image is generated lazily, block by block (``da.map_blocks``): a Pd [110] lattice
of three fringes, expanded by 1 % against the reflections given (so that the refining
pass really recomputes every block), with white noise; 1024² chunks, 256 MiB in total
were it ever held at once.  A child process builds the lazy maps (window 128, step 8,
refinement and strain on), computes all five maps and the four strain maps with dask's default
threaded scheduler, checks them against the known lattice, and reports its own peak
resident memory (``ru_maxrss``), which this script prints with the ratio to the limit.

Run:  .venv/bin/python benchmarks/bench_memory.py [--size 8192]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

LIMIT = 1.5e9  # bytes

CHILD = r"""
import json, resource, sys, time
import dask, dask.array as da, numpy as np
from napari_hrtem_fft import analyze
from napari_hrtem_fft.core.synthetic import pd_110_reflections

size, chunk, pixel = int(sys.argv[1]), 1024, 0.02
refl = pd_110_reflections(10.0)
true = refl / 1.01

def lattice(block_info=None):
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    y = np.arange(y0, y1)[:, None] * pixel
    x = np.arange(x0, x1)[None, :] * pixel
    img = np.ones((y1 - y0, x1 - x0))
    for (gy, gx), a, p in zip(true, (0.2, 0.2, 0.12), (0.3, 1.1, 2.0)):
        img += a * np.cos(2 * np.pi * (gy * y + gx * x) + p)
    seed = block_info[None]["chunk-location"]
    img += 0.1 * np.random.default_rng(list(seed)).standard_normal(img.shape)
    return img.astype(np.float32)

image = da.map_blocks(lattice, chunks=((chunk,) * (size // chunk),) * 2, dtype=np.float32,
                      meta=np.empty((0, 0), np.float32))
t0 = time.perf_counter()
maps = analyze(image, refl, pixel_size=pixel, window=128, step=8)
fields = [maps.d_spacing, maps.angle, maps.amplitude, maps.d_sigma, maps.angle_sigma]
strain = list(maps.strain.components().values())
results = dask.compute(*fields, *strain)
elapsed = time.perf_counter() - t0
d = results[0]
inner = d[:, 8:-8, 8:-8]
rel = inner / (1 / np.hypot(true[:, 0], true[:, 1]))[:, None, None] - 1
print(json.dumps({
    "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "seconds": elapsed,
    "map_shape": list(d.shape),
    "nan_inner": int(np.isnan(inner).sum()),
    "rms_rel_d_error_inner": float(np.sqrt(np.nanmean(rel**2))),
    "max_rel_d_error_inner": float(np.nanmax(np.abs(rel))),
    "median_exx_inner": float(np.nanmedian(results[5][8:-8, 8:-8])),
    "output_bytes": int(sum(r.nbytes for r in results)),
}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    args = parser.parse_args()
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(args.size)], capture_output=True, text=True, check=False
    )
    if run.returncode:
        sys.exit(f"child failed:\n{run.stderr[-3000:]}")
    res = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        f"image {args.size}x{args.size} float32 (lazy dask, 1024² chunks), window 128, step 8, "
        f"3 reflections, refine + strain"
    )
    print(
        f"maps {tuple(res['map_shape'])}, computed in {res['seconds']:.1f} s; "
        f"results held: {res['output_bytes'] / 1e6:.0f} MB"
    )
    print(
        f"check: NaN inside {res['nan_inner']}, d/d_true - 1: RMS "
        f"{res['rms_rel_d_error_inner']:.1e}, max {res['max_rel_d_error_inner']:.1e}; "
        f"median exx {res['median_exx_inner']:.4f} (true 0.0100)"
    )
    print(
        f"peak resident memory: {res['peak_rss'] / 1e9:.3f} GB  "
        f"= {res['peak_rss'] / LIMIT:.2f} x the 1.5 GB limit"
    )


if __name__ == "__main__":
    main()
