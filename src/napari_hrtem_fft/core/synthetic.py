"""Synthetic HRTEM-like lattice images with an exactly known local lattice.

The image is a sum of fringes ``A_k cos(2π g_k · M(r) + φ_k)`` inside a particle,
where ``M`` maps an image position ``r`` (nm) to a position in the undeformed
reference lattice.  The true local reciprocal vector of reflection ``k`` at ``r``
is ``J_M(r)ᵀ g_k`` (``J_M`` the Jacobian of ``M``), which :func:`synthetic_lattice`
returns per pixel, so that any estimator can be checked against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .reciprocal import as_reflections, g_from_spacing_angle

__all__ = [
    "PD_LATTICE_CONSTANT",
    "SyntheticTruth",
    "core_shell_mapping",
    "dilatation_mapping",
    "gradient_mapping",
    "pd_110_reflections",
    "pd_core_shell_sample",
    "rotation_mapping",
    "synthetic_lattice",
]

#: Lattice constant of palladium in nm.
PD_LATTICE_CONSTANT = 0.389

Mapping = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class SyntheticTruth:
    """Ground truth of a synthetic lattice image.

    Attributes
    ----------
    g : numpy.ndarray
        True local reciprocal vectors, shape ``(n, H, W, 2)`` as ``(gy, gx)`` in nm⁻¹.
    reflections : numpy.ndarray
        Reference (undeformed) reflections ``(n, 2)`` in nm⁻¹.
    particle : numpy.ndarray
        Boolean ``(H, W)``: pixels inside the crystal.
    pixel_size : float
        Pixel size in nm.
    """

    g: np.ndarray
    reflections: np.ndarray
    particle: np.ndarray
    pixel_size: float

    @property
    def d_spacing(self) -> np.ndarray:
        """True local spacing ``(n, H, W)`` in nm."""
        return 1.0 / np.hypot(self.g[..., 0], self.g[..., 1])

    @property
    def angle(self) -> np.ndarray:
        """True local angle ``(n, H, W)`` in degrees (``atan2(-gy, gx)``)."""
        return np.degrees(np.arctan2(-self.g[..., 0], self.g[..., 1]))

    def interior(self, window: int) -> np.ndarray:
        """Pixels whose whole ``window``-sized square lies inside the particle."""
        structure = np.ones((window + 1, window + 1), dtype=bool)
        return ndimage.binary_erosion(self.particle, structure=structure, border_value=0)


def dilatation_mapping(factor: float, center=(0.0, 0.0)) -> Mapping:
    """Uniform isotropic dilatation: lattice spacings multiplied by ``factor``.

    Parameters
    ----------
    factor : float
        Spacing ratio, e.g. 1.02 for +2 %.
    center : tuple of float
        Fixed point ``(y, x)`` in nm.
    """
    cy, cx = center
    return lambda y, x: (cy + (y - cy) / factor, cx + (x - cx) / factor)


def rotation_mapping(degrees: float, center=(0.0, 0.0)) -> Mapping:
    """Rigid lattice rotation, counter-clockwise on screen by ``degrees``, about ``center`` (nm)."""
    t = np.radians(degrees)
    cy, cx = center
    c, s = np.cos(t), np.sin(t)

    # Screen counter-clockwise with y pointing down is (x, -y) rotating by +t; the
    # inverse map rotates image positions back by -t.
    def mapping(y, x):
        dy, dx = y - cy, x - cx
        return cy + c * dy + s * dx, cx - s * dy + c * dx

    return mapping


def gradient_mapping(strain_per_nm: float, axis: int = 1) -> Mapping:
    """Strain along ``axis`` growing linearly with position: ``e(x) = strain_per_nm · x``.

    The local spacing along ``axis`` at coordinate ``s`` (nm) is ``d_ref · (1 + k s)``,
    realised by ``M(s) = ln(1 + k s) / k``.
    """
    k = float(strain_per_nm)

    def mapping(y, x):
        coords = [y, x]
        coords[axis] = np.log1p(k * coords[axis]) / k
        return coords[0], coords[1]

    return mapping


def core_shell_mapping(center, core_radius: float, expansion: float, width: float = 0.3) -> Mapping:
    """Core of the reference lattice, shell expanded by ``expansion`` (e.g. 0.035).

    The local dilatation is ``expansion · σ((ρ - core_radius)/width)`` with ``ρ`` the
    distance from ``center`` (nm) and ``σ`` the logistic function, applied about the centre.
    """
    cy, cx = center

    def mapping(y, x):
        dy, dx = y - cy, x - cx
        rho = np.hypot(dy, dx)
        e = expansion / (1.0 + np.exp(-(rho - core_radius) / width))
        return cy + dy / (1.0 + e), cx + dx / (1.0 + e)

    return mapping


def _local_g(mapping: Mapping, y, x, reflections, h: float) -> np.ndarray:
    """``J_Mᵀ g`` by central differences of the mapping (step ``h`` in nm)."""
    my_yp, mx_yp = mapping(y + h, x)
    my_ym, mx_ym = mapping(y - h, x)
    my_xp, mx_xp = mapping(y, x + h)
    my_xm, mx_xm = mapping(y, x - h)
    j_yy = (my_yp - my_ym) / (2 * h)
    j_xy = (mx_yp - mx_ym) / (2 * h)
    j_yx = (my_xp - my_xm) / (2 * h)
    j_xx = (mx_xp - mx_xm) / (2 * h)
    gy = reflections[:, 0, None, None] * j_yy + reflections[:, 1, None, None] * j_xy
    gx = reflections[:, 0, None, None] * j_yx + reflections[:, 1, None, None] * j_xx
    return np.stack([gy, gx], axis=-1)


def _amorphous(shape, pixel_size: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited random texture with unit standard deviation, like an amorphous film."""
    noise = rng.standard_normal(shape)
    ky = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=pixel_size)[None, :]
    k = np.hypot(ky, kx)
    # A broad ring around 3 nm⁻¹ (amorphous carbon speckle) with a low-frequency tail.
    envelope = np.exp(-(((k - 3.0) / 2.0) ** 2)) + 0.3 * np.exp(-((k / 1.0) ** 2))
    tex = np.fft.irfft2(np.fft.rfft2(noise) * envelope, s=shape)
    return tex / tex.std()


def synthetic_lattice(
    shape,
    *,
    pixel_size: float,
    reflections,
    amplitudes=None,
    phases=None,
    mapping: Mapping | None = None,
    particle=None,
    mean: float = 1.0,
    amorphous: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
    dtype=np.float64,
) -> tuple[np.ndarray, SyntheticTruth]:
    """Make a lattice image with a known local reciprocal lattice.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` in pixels.
    pixel_size : float
        Pixel size in nm.
    reflections : array_like
        Reference reflections ``(n, 2)`` as ``(gy, gx)`` in nm⁻¹; each adds one fringe
        (a Friedel pair in the FFT).
    amplitudes : array_like, optional
        Fringe amplitude per reflection (default 0.2, in units of the mean intensity).
    phases : array_like, optional
        Fringe phase per reflection in radians (default: random, seeded).
    mapping : callable, optional
        ``(y, x) -> (y_ref, x_ref)`` in nm, mapping image positions to the reference
        lattice (see the ``*_mapping`` helpers).  Default: undeformed.
    particle : array_like of bool or callable, optional
        Where the crystal is: a boolean ``(H, W)`` array, or ``f(y, x) -> bool`` on
        positions in nm.  Default: everywhere.
    mean : float
        Mean intensity.
    amorphous : float
        Standard deviation of an amorphous-film texture added everywhere.
    noise : float
        Standard deviation of additive white noise per pixel (same units as ``amplitudes``).
    seed : int
        Seed of the random generator.
    dtype : numpy dtype
        Output dtype of the image.

    Returns
    -------
    image : numpy.ndarray
        ``(H, W)`` image.
    truth : SyntheticTruth
        The true local reciprocal vectors per pixel and the particle mask.
    """
    refl = as_reflections(reflections)
    n = refl.shape[0]
    rng = np.random.default_rng(seed)
    amps = np.full(n, 0.2) if amplitudes is None else np.broadcast_to(amplitudes, (n,))
    phis = rng.uniform(0, 2 * np.pi, n) if phases is None else np.broadcast_to(phases, (n,))
    h, w = int(shape[0]), int(shape[1])
    y = np.arange(h, dtype=np.float64)[:, None] * pixel_size + np.zeros((1, w))
    x = np.arange(w, dtype=np.float64)[None, :] * pixel_size + np.zeros((h, 1))
    if mapping is None:
        ry, rx = y, x
        g = np.broadcast_to(refl[:, None, None, :], (n, h, w, 2)).copy()
    else:
        ry, rx = mapping(y, x)
        g = _local_g(mapping, y, x, refl, h=1e-3 * pixel_size)
    if particle is None:
        inside = np.ones((h, w), dtype=bool)
    elif callable(particle):
        inside = np.asarray(particle(y, x), dtype=bool)
    else:
        inside = np.asarray(particle, dtype=bool)
    fringes = np.zeros((h, w))
    for k in range(n):
        fringes += amps[k] * np.cos(2 * np.pi * (refl[k, 0] * ry + refl[k, 1] * rx) + phis[k])
    image = mean + np.where(inside, fringes, 0.0)
    if amorphous:
        image += amorphous * _amorphous((h, w), pixel_size, rng)
    if noise:
        image += noise * rng.standard_normal((h, w))
    truth = SyntheticTruth(g=g, reflections=refl, particle=inside, pixel_size=float(pixel_size))
    return image.astype(dtype), truth


def pd_110_reflections(rotation: float = 10.0, a: float = PD_LATTICE_CONSTANT) -> np.ndarray:
    """The three independent reflections of an fcc [110] zone: 1-11, -111 ({111}) and 002.

    Parameters
    ----------
    rotation : float
        Angle of the 002 reflection, degrees counter-clockwise on screen.
    a : float
        Cubic lattice constant in nm (Pd: 0.389).

    Returns
    -------
    numpy.ndarray
        ``(3, 2)`` reflections ``(gy, gx)`` in nm⁻¹; spacings ``a/√3, a/√3, a/2``.
    """
    half = np.degrees(np.arccos(1 / np.sqrt(3)))
    d = np.array([a / np.sqrt(3), a / np.sqrt(3), a / 2])
    angles = np.array([rotation + half, rotation - half, rotation])
    return g_from_spacing_angle(d, angles)


def pd_core_shell_sample(
    shape=(1024, 1024),
    *,
    pixel_size: float = 0.02,
    radius: float = 7.0,
    core_radius: float = 4.0,
    expansion: float = 0.035,
    rotation: float = 10.0,
    noise: float = 0.1,
    amorphous: float = 0.08,
    seed: int = 0,
) -> tuple[np.ndarray, SyntheticTruth]:
    """A Pd [110] nanoparticle on an amorphous film, with a shell expanded by 3.5 %.

    Mimics a hydrogen-loaded Pd particle: the core keeps ``a = 0.389`` nm, the shell
    beyond ``core_radius`` is dilated by ``expansion``.

    Parameters
    ----------
    shape : tuple of int
        Image size in pixels.
    pixel_size : float
        nm per pixel.
    radius, core_radius : float
        Particle and core radius in nm.
    expansion : float
        Lattice expansion of the shell (0.035 = 3.5 %).
    rotation : float
        Orientation of the 002 reflection in degrees.
    noise : float
        White noise standard deviation per pixel (fringe amplitudes are 0.2, 0.2, 0.12).
    amorphous : float
        Amorphous-film texture standard deviation.
    seed : int
        Random seed.

    Returns
    -------
    image : numpy.ndarray
        float32 ``shape`` image.
    truth : SyntheticTruth
        Ground truth (local g per pixel, particle mask).
    """
    center = (shape[0] * pixel_size / 2, shape[1] * pixel_size / 2)
    refl = pd_110_reflections(rotation)

    def disc(y, x):
        return np.hypot(y - center[0], x - center[1]) <= radius

    return synthetic_lattice(
        shape,
        pixel_size=pixel_size,
        reflections=refl,
        amplitudes=[0.2, 0.2, 0.12],
        mapping=core_shell_mapping(center, core_radius, expansion),
        particle=disc,
        amorphous=amorphous,
        noise=noise,
        seed=seed,
        dtype=np.float32,
    )
