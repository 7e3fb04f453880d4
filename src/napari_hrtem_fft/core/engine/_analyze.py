"""The public entry points: :func:`iter_analyze` (progress per block) and :func:`analyze`."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from ..maps import LatticeMaps, StrainMaps
from ._checks import (
    _check_chunks,
    _check_numbers,
    check_flag,
    check_image,
    check_reflections,
)
from ._drivers import Progress, dask_maps, numpy_maps
from ._frame import _NOISE_ARC, _NOISE_OWN_LOBE, _NOISE_WIDTH, _NOISE_ZERO, DEFAULT_MIN_AMPLITUDE
from ._plan import BlockPlan, Settings, auto_chunk, compatible, numpy_chunks

_FIELDS = ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma")


def analyze(
    image,
    reflections,
    *,
    pixel_size: float,
    window: int = 128,
    step: int = 8,
    search: float = 0.1,
    refine: bool = True,
    min_amplitude: float = DEFAULT_MIN_AMPLITUDE,
    compute_strain: bool = True,
    chunks=None,
    background: bool = True,
    method: str = "local_fft",
    resolution_nm: float | None = None,
) -> LatticeMaps:
    """Map local lattice spacing and angle of each reflection with a rolling window.

    Map pixel ``(i, j)`` is the window centred on image pixel ``(i·step, j·step)``; the
    window (even size ``N``) covers pixels ``c - N/2 … c + N/2 - 1`` along each axis
    with a periodic Hann weight that peaks on ``c``.  Windows extending beyond the image
    or touching NaN/inf pixels give NaN in every map.  This runs :func:`iter_analyze`
    to the end.

    Parameters
    ----------
    image : array_like or dask.array.Array
        Image ``(y, x)`` or stack ``(..., y, x)`` of real numbers (intensity, any unit).
        NaN/inf pixels are missing data.  numpy in gives numpy maps; dask in gives
        lazy dask maps (nothing is computed until asked).
    reflections : array_like
        ``(n, 2)`` reciprocal vectors ``(gy, gx)`` in nm⁻¹ (``n >= 1``), e.g. from
        :func:`napari_hrtem_fft.find_reflections`.
    pixel_size : float
        Image pixel size in nm.
    window : int
        Window size ``N`` in pixels, even, >= 16 and <= the image size.
    step : int
        Distance between window centres in pixels (>= 1).
    search : float
        Half-width of the search region around each reflection, as a fraction of
        ``|g|`` radially and in radians tangentially (0.1: ±10 % in ``|g|``, ±5.7°).
        Estimates outside it are NaN.  Must lie in (0, 0.5].
    refine : bool
        Demodulate at the power-weighted median ``g`` of a quick survey of each 2D
        frame instead of at ``reflections`` (when it moved by more than 0.1 bin), so
        that uniform lattice changes and rotations stay in the window's main lobe.
        The maps' search region stays centred on ``reflections``.
    min_amplitude : float
        Smallest amplitude accepted: the window's peak power over the noise power the
        frame shows at ``|g|`` where the lattice has no reflection (a signal-to-noise
        ratio, see ``docs/method.md``); weaker windows give NaN spacing and angle.
    compute_strain : bool
        Compute strain maps (:func:`napari_hrtem_fft.strain`) when at least two
        non-collinear reflections are given.
    chunks : int, (int, int), "auto" or None
        Spatial block size in pixels (before the window/2 overlap) for the block-wise
        computation; rounded up to a multiple of ``step``.  Default: about 8 windows,
        between 1024 and 2048 pixels (numpy input: full-width strips, one per CPU or
        more).  For dask input ``None`` keeps the input's chunks when they suit
        (multiples of ``step``, 4 windows to 4096 pixels), else rechunks.
    background : bool
        Subtract each window's Hann-weighted mean before the transform (recommended:
        otherwise the mean intensity leaks into the coefficient and biases ``d``).
    method : {"local_fft", "gpa"}
        ``"gpa"``: geometric phase analysis (:func:`napari_hrtem_fft.analyze_gpa`) on
        the same map grid, with ``step``, ``search``, ``min_amplitude``,
        ``compute_strain`` and ``chunks`` (an int); ``refine`` and ``background`` do
        not apply.  Its resolution is ``resolution_nm``, or matched to ``window``.
    resolution_nm : float, optional
        GPA resolution (FWHM, nm); only with ``method="gpa"``.

    Returns
    -------
    LatticeMaps
        ``d_spacing`` (nm), ``angle`` (degrees, ``atan2(-gy, gx)`` in (-180, 180]),
        ``amplitude`` (dimensionless power ratio; NaN only for windows touching missing
        data or the image edge), ``d_sigma`` (nm) and ``angle_sigma`` (degrees), each
        ``(n, ..., ceil(H/step), ceil(W/step))`` float32; ``strain`` when computed;
        ``parameters`` with every option.

    Raises
    ------
    TypeError
        If ``image`` is not real numeric data or an option has the wrong type.
    ValueError
        If the image is empty or smaller than the window, a dask image has unknown
        chunk sizes, ``reflections`` is not ``(n, 2)`` or holds a reflection beyond
        Nyquist, inside the central two bins, or two that are the same fringe
        (:func:`check_reflections`), or an option is out of range.

    Notes
    -----
    ``d_sigma`` and ``angle_sigma`` assume white noise at the measured background level
    (see ``docs/method.md``).  Computation is block-wise (dask); numpy input is
    computed in-process with threads.
    """
    run = iter_analyze(
        image,
        reflections,
        pixel_size=pixel_size,
        window=window,
        step=step,
        search=search,
        refine=refine,
        min_amplitude=min_amplitude,
        compute_strain=compute_strain,
        chunks=chunks,
        background=background,
        method=method,
        resolution_nm=resolution_nm,
    )
    return run_to_end(run)


def run_to_end(run):
    """Exhaust a generator of :class:`Progress` and return its result."""
    while True:
        try:
            next(run)
        except StopIteration as finished:
            return finished.value


def iter_analyze(image, reflections, **options):
    """:func:`analyze`, as a generator that reports each finished block.

    The input is checked at once (errors are raised by this call, not by the first
    ``next``).  The generator yields a :class:`Progress` record (``done``, ``total``,
    ``message``) after each block task of numpy input (the survey blocks, then the map
    blocks) and returns the :class:`LatticeMaps` (``StopIteration.value``; ``maps =
    yield from iter_analyze(...)`` in a generator, or napari's ``thread_worker``
    ``returned`` signal).  Closing it stops the run between blocks: blocks not yet
    started are cancelled.  dask input yields nothing: its maps are lazy.

    Parameters
    ----------
    image, reflections
        As for :func:`analyze`.
    **options
        The keyword options of :func:`analyze`.

    Returns
    -------
    generator
        Of :class:`Progress`, returning :class:`LatticeMaps`.
    """
    try:
        bound = inspect.signature(analyze).bind(image, reflections, **options)
    except TypeError as err:
        raise TypeError(f"iter_analyze: {err}") from None
    bound.apply_defaults()
    arguments = bound.arguments
    method, resolution_nm = arguments.pop("method"), arguments.pop("resolution_nm")
    if method == "gpa":
        return _gpa_run(arguments, resolution_nm)
    if method != "local_fft":
        raise ValueError(f"method must be 'local_fft' or 'gpa', got {method!r}")
    if resolution_nm is not None:
        raise ValueError("resolution_nm is an option of method='gpa'")
    return _run(_request(arguments))


def _gpa_run(arguments: dict, resolution_nm):
    """``method="gpa"``: the GPA maps, computed now (one FFT per frame, fast).

    A generator of one :class:`Progress`, so that every caller of :func:`iter_analyze`
    takes either method.
    """
    from ..gpa import analyze_gpa

    maps = analyze_gpa(
        arguments["image"],
        arguments["reflections"],
        pixel_size=arguments["pixel_size"],
        step=arguments["step"],
        resolution_nm=resolution_nm,
        window=arguments["window"] if resolution_nm is None else None,
        search=arguments["search"],
        min_amplitude=arguments["min_amplitude"],
        compute_strain=arguments["compute_strain"],
        chunks=arguments["chunks"],
    )

    def run():
        yield Progress(1, 1, "GPA maps")
        return maps

    return run()


@dataclass(frozen=True)
class _Request:
    """A checked call: the image, its reflections and every option."""

    image: object
    reflections: np.ndarray
    settings: Settings
    plan: BlockPlan
    lazy: bool
    work: type
    refine: bool
    compute_strain: bool
    chunks: tuple[int, int] | str


def _request(arguments: dict) -> _Request:
    """Check every argument of :func:`analyze` (all given) and plan the blocks."""
    image, shape, dtype = check_image(arguments["image"])
    pixel_size, window, step, search, min_amplitude = _check_numbers(arguments)
    refine, compute_strain, background = (
        check_flag(arguments[name], name) for name in ("refine", "compute_strain", "background")
    )
    if shape[-2] < window or shape[-1] < window:
        raise ValueError(
            f"image (y, x) size {shape[-2:]} is smaller than the window ({window} pixels)"
        )
    refl = check_reflections(arguments["reflections"], pixel_size=pixel_size, window=window)
    depth = -(-(window // 2) // step) * step
    user_chunks = _check_chunks(arguments["chunks"], step, depth)
    given = refl * pixel_size
    settings = Settings(
        given=given,
        window=window,
        step=step,
        depth=depth,
        shape=shape[-2:],
        pixel_size=pixel_size,
        min_amplitude=min_amplitude,
        search=search,
        background=background,
    )
    import dask.array as da

    lazy = isinstance(image, da.Array)
    # Blocks travel in the input's float precision (float32 for integers, so that NaN
    # can mark the border); each frame's mean is removed in that precision and the rest
    # is computed in single precision.
    work = np.float64 if dtype == np.float64 else np.float32
    plan, image, spatial = _plan(image, settings, user_chunks, lazy, work)
    # The chunks asked for (or chosen), rather than the plan's, which merges remainders.
    chunks = tuple(int(c) for c in spatial) if spatial else "input"
    return _Request(image, refl, settings, plan, lazy, work, refine, compute_strain, chunks)


def _plan(image, settings: Settings, user_chunks, lazy: bool, work):
    """The block plan, the image chunked (dask) or as an array (numpy) to match it, and
    the spatial block size asked for or chosen (``None``: the dask input's own chunks).
    """
    window, step, depth, shape = settings.window, settings.step, settings.depth, settings.shape
    if not lazy:
        spatial = user_chunks or numpy_chunks(shape, window, step, depth)
        return BlockPlan.split(shape, spatial, depth, step), np.asarray(image), spatial
    ndim = image.ndim
    keep = user_chunks is None and all(
        compatible(image.chunks[a], step, depth, window) for a in (ndim - 2, ndim - 1)
    )
    spatial = None
    if keep:
        plan = BlockPlan.from_chunks(image.chunks[-2:], step)
    else:
        spatial = user_chunks or (auto_chunk(window, step),) * 2
        plan = BlockPlan.split(shape, spatial, depth, step)
        image = image.rechunk({ndim - 2: plan.chunks[0], ndim - 1: plan.chunks[1]})
    if image.dtype != work:
        image = image.astype(work)
    return plan, image, user_chunks or spatial


def _run(request: _Request):
    """The generator behind :func:`iter_analyze`."""
    from ..strain import has_two_directions
    from ..strain import strain as _strain

    settings = request.settings
    demod = strain = None
    with_strain = request.compute_strain and has_two_directions(request.reflections)
    if request.lazy:
        packed = dask_maps(request.image, request.plan, settings, request.refine)
    else:
        # Strain block by block beside the maps (in the blocks' tasks), relative to the
        # given reflections as strain() computes it.
        reference = request.reflections if with_strain else None
        packed, demod, strain = yield from numpy_maps(
            request.image, request.plan, settings, request.work, request.refine, reference
        )
    maps = LatticeMaps(
        **{name: packed[i] for i, name in enumerate(_FIELDS)},
        phase=packed[5],
        reflections=request.reflections,
        window=settings.window,
        step=settings.step,
        pixel_size=settings.pixel_size,
        parameters=_parameters(request, demod),
    )
    if strain is not None:
        maps.strain = StrainMaps(**strain, reference=request.reflections)
    elif with_strain:
        maps.strain = _strain(maps)
    return maps


def _parameters(request: _Request, demod) -> dict:
    """Every option of the run, for provenance (JSON-friendly)."""
    s = request.settings
    parameters = {
        "pixel_size": s.pixel_size,
        "window": s.window,
        "step": s.step,
        "search": s.search,
        "refine": request.refine,
        "min_amplitude": s.min_amplitude,
        "compute_strain": request.compute_strain,
        "chunks": request.chunks,
        "background": s.background,
        "reflections": request.reflections.tolist(),
        "image_shape": list(s.shape),
        "window_pixels": "c - N/2 … c + N/2 - 1 (periodic Hann, peak on c)",
        "overlap_depth": s.depth,
        "precision": "float32 (complex64 FFTs)",
        "amplitude_background": (
            f"median power of the block's Hann-apodised spectrum on the arc |g| ± "
            f"{_NOISE_WIDTH} bins, {_NOISE_OWN_LOBE} to {_NOISE_ARC} bins beside g, "
            f"at least {_NOISE_ZERO} bins from zero"
        ),
        "method": "closed-form phase difference of Hann-windowed Fourier coefficients",
    }
    if demod is not None:
        # (n, 2, *lead) in 1/nm; the second modes of two-phase frames, None where none.
        parameters["demodulation"] = (demod[:, :2] / s.pixel_size).tolist()
        second = demod[:, 2:] / s.pixel_size
        if np.isfinite(second).any():
            parameters["second_demodulation"] = np.where(
                np.isfinite(second), second, None
            ).tolist()
    return parameters
