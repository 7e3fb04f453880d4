"""Fuzz suite: mutated copies of the real files and crafted files, each read in a worker.

Every read must end in a correct read or a MicrographReadError naming the file; the
npe2 hook must return None or a reader, never raise, and answer in under 0.5 s. Reads
run in worker processes with a 2 GiB address-space cap and a timeout
(``fuzzing.py``), so a memory bomb, a hang or a crash is counted, not suffered. The
long version (thousands of cases) is ``benchmarks/fuzz_report.py``.
"""

from __future__ import annotations

import struct

import fuzzing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GOOD = ("correct", "clean error")


def _problems(results):
    return [
        f"[{c.kind}] {c.path.name} in {c.path.parent.name}: {r['outcome']}: {r['detail'][:160]}"
        + (f" (hook {r['hook_s']:.2f} s)" if r.get("slow_hook") else "")
        for c, r in results
        if r["outcome"] not in GOOD or r.get("slow_hook")
    ]


def test_mutated_and_crafted_files_end_in_a_read_or_a_clean_error(shared_data, tmp_path):
    cases = fuzzing.build_cases(shared_data, tmp_path, quick=True, seed=11)
    kinds = {c.kind for c in cases}
    assert {"byte flip", "huge header dims", "hdf5 links", "crafted", "truncation"} <= kinds
    results = fuzzing.run_cases(cases, workers=2, timeout=30.0, hook_limit=fuzzing.HOOK_GUARD_S)
    assert _problems(results) == []
    # Data stored in other files is refused by default, not read.
    links = [r for c, r in results if c.kind == "hdf5 links"]
    assert len(links) == 9
    assert all(r["outcome"] == "clean error" for r in links)
    assert sum("allow_external=True" in r["detail"] for r in links) >= 8


@pytest.fixture(scope="module")
def worker():
    w = fuzzing.Sandbox(hook_limit=fuzzing.HOOK_GUARD_S)
    yield w
    w.close()


SMALL = {
    "dm3": "dm3/test_STEM_image.dm3",
    "dm4": "dm4/dmTest_float32_nonSquare_diffPixelSize.dm4",
    "emd": "ncem_emd/Si100_2x1x1_3D.emd",
    "velox": "velox_emd/STEM HAADF Diffraction Micro.emd",
    "mrc": "mrc/HAADFscan.mrc",
    "tif": "tiff/test_loading_image_saved_with_imageJ.tif",
    "ser": "tia/16_STOimage_1.ser",
}


@pytest.mark.parametrize("key", sorted(SMALL))
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_header_edit_ends_in_a_read_or_a_clean_error(key, shared_data, tmp_path, worker, data):
    src = shared_data / SMALL[key]
    raw = bytearray(src.read_bytes())
    head = min(len(raw), 8192)
    pos = data.draw(st.integers(0, head - 4), label="position")
    kind = data.draw(st.sampled_from(["byte", "int32", "cut"]), label="edit")
    if kind == "byte":
        raw[pos] = data.draw(st.integers(0, 255), label="value")
    elif kind == "int32":
        value = data.draw(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 90_000, 2_000_000_000]))
        raw[pos : pos + 4] = struct.pack(data.draw(st.sampled_from(["<I", ">I"])), value)
    else:
        raw = raw[: max(1, len(raw) - data.draw(st.integers(1, len(raw) - 1)))]
    path = tmp_path / f"h{pos}_{kind}" / src.name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(bytes(raw))
    result = worker.run(fuzzing.Case(kind, path), timeout=30.0)
    assert result["outcome"] in GOOD, result
    assert not result.get("slow_hook"), result
