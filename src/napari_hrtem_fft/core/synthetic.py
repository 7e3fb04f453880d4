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
        # A separable minimum filter: binary erosion with a (window+1)² structure needs
        # memory and time that grow with its area (MemoryError at window 256).
        inside = self.particle.astype(np.uint8)
        return ndimage.minimum_filter(inside, size=window + 1, mode="constant", cval=0) > 0

    def map_errors(self, maps, where=None) -> tuple[np.ndarray, np.ndarray]:
        """Errors of lattice maps against this truth, on the maps' grid.

        Map pixel ``(i, j)`` is compared with the truth at image pixel
        ``(i·step, j·step)``, the centre of its window.

        Parameters
        ----------
        maps : LatticeMaps
            Maps of this image (``d_spacing``, ``angle`` and ``step`` are used).
        where : numpy.ndarray of bool, optional
            Map pixels to keep; default all.

        Returns
        -------
        d_error : numpy.ndarray
            Relative spacing error ``d/d_true - 1``, shape ``(n, ...)``.
        angle_error : numpy.ndarray
            Angle error in degrees, wrapped to [-180, 180).
        """
        step = int(maps.step)
        d_err = np.asarray(maps.d_spacing, np.float64) / self.d_spacing[:, ::step, ::step] - 1
        a_err = np.asarray(maps.angle, np.float64) - self.angle[:, ::step, ::step]
        a_err = (a_err + 180.0) % 360.0 - 180.0
        if where is None:
            return d_err, a_err
        return d_err[:, where], a_err[:, where]


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
    """Rigid rotation by ``degrees``, counter-clockwise on screen, about ``center`` (nm)."""
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


def core_shell_mapping(
    center, core_radius: float, expansion: float, width: float = 0.3
) -> Mapping:
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
    jacobian: Callable | None = None,
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
    jacobian : callable, optional
        ``(y, x) -> J`` with ``J[a, b] = ∂M_a/∂r_b`` of shape ``(2, 2, H, W)``: the
        mapping's derivatives where central differences would fail (e.g. on the cut of
        a dislocation field).  Default: central differences of ``mapping``.
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
        if jacobian is None:
            g = _local_g(mapping, y, x, refl, h=1e-3 * pixel_size)
        else:
            # g_local[b] = Σ_a g[a] ∂M_a/∂r_b
            g = np.einsum("na,abyx->nyxb", refl, jacobian(y, x))
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
    interface_width: float = 0.02,
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
    interface_width : float
        Width of the core-shell interface in nm.  The shell is dilated about the
        particle centre, so its lattice is not continuous with the core's: across the
        interface the planes slip by ``expansion · core_radius`` (a semi-coherent,
        misfit-accommodating interface).  A sharp interface (the default, one pixel)
        keeps core and shell uniform; a wide one spreads the slip into a ring of strong
        radial strain, up to ``expansion · core_radius / (4 · interface_width)``.
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
        mapping=core_shell_mapping(center, core_radius, expansion, width=interface_width),
        particle=disc,
        amorphous=amorphous,
        noise=noise,
        seed=seed,
        dtype=np.float32,
    )


# --------------------------------------------------------------------------------------
# Edge dislocations
# --------------------------------------------------------------------------------------

__all__ += [
    "DislocationTruth",
    "dislocation_sample",
    "edge_dislocation_displacement",
    "lattice_translations",
]


def lattice_translations(reflections) -> np.ndarray:
    """Real-space basis ``(2, 2)`` (rows ``a_1, a_2`` as ``(y, x)`` nm) dual to two reflections.

    ``a_i · g_j = δ_ij``: every lattice translation ``t = m a_1 + n a_2`` (integers)
    has ``g·t`` integer for both reflections and for their integer combinations.
    """
    g = as_reflections(reflections)[:2]
    return np.linalg.inv(g).T


def _edge_terms(y, x, core, burgers, poisson: float):
    """One edge dislocation: displacement ``(uy, ux)`` and its gradient ``∂u_a/∂r_b``.

    Isotropic elasticity (Hirth & Lothe, eq. 3-45) in the frame ``X`` along ``b``,
    ``Y`` 90° counter-clockwise on screen from it, ``θ = atan2(Y, X)``::

        u_X = b/2π [θ + sin 2θ / 4(1-ν)]
        u_Y = -b/2π [(1-2ν)/4(1-ν) ln ρ² + cos 2θ / 4(1-ν)]

    so that ``∮ du = b`` once counter-clockwise on screen round the core.
    """
    b = float(np.hypot(burgers[0], burgers[1]))
    e1 = np.asarray(burgers, dtype=np.float64) / b
    e2 = np.array([-e1[1], e1[0]])  # 90° counter-clockwise on screen, (y, x) order
    dy, dx = y - core[0], x - core[1]
    big_x = dy * e1[0] + dx * e1[1]
    big_y = dy * e2[0] + dx * e2[1]
    # A pixel exactly on a core would give log(0): the field there is that 1 pm away.
    rho2 = np.maximum(big_x**2 + big_y**2, 1e-6)
    nu = float(poisson)
    k = b / (2 * np.pi)
    c1 = 1.0 / (2 * (1 - nu))
    c2 = (1 - 2 * nu) / (4 * (1 - nu))
    c3 = 1.0 / (4 * (1 - nu))
    theta = np.arctan2(big_y, big_x)
    u_x = k * (theta + c1 * big_x * big_y / rho2)
    u_y = -k * (c2 * np.log(rho2) + c3 * (big_x**2 - big_y**2) / rho2)
    # Analytic derivatives in the (X, Y) frame.
    r4 = rho2 * rho2
    dux_dx = k * (-big_y / rho2 + c1 * big_y * (big_y**2 - big_x**2) / r4)
    dux_dy = k * (big_x / rho2 + c1 * big_x * (big_x**2 - big_y**2) / r4)
    duy_dx = -k * (c2 * 2 * big_x / rho2 + c3 * 4 * big_x * big_y**2 / r4)
    duy_dy = -k * (c2 * 2 * big_y / rho2 - c3 * 4 * big_y * big_x**2 / r4)
    rot = np.stack([e1, e2])  # rows: X and Y axes in (y, x) components
    u = [u_x * rot[0, a] + u_y * rot[1, a] for a in range(2)]
    # ∂u_a/∂r_c = Σ_{P,Q} rot[P, a] ∂u_P/∂Q rot[Q, c]
    local = [[dux_dx, dux_dy], [duy_dx, duy_dy]]
    grad = [
        [
            sum(rot[p, a] * local[p][q] * rot[q, c] for p in range(2) for q in range(2))
            for c in range(2)
        ]
        for a in range(2)
    ]
    return u, grad


def edge_dislocation_displacement(y, x, cores, burgers, poisson: float = 0.39):
    """Displacement ``(2, ...)`` as ``(uy, ux)`` nm of straight edge dislocations.

    Parameters
    ----------
    y, x : array_like
        Positions in nm.
    cores : array_like
        ``(k, 2)`` core positions ``(y, x)`` in nm (line direction along the beam).
    burgers : array_like
        ``(k, 2)`` Burgers vectors ``(by, bx)`` in nm, in the image plane; ``b = ∮ du``
        counter-clockwise on screen round the core.
    poisson : float
        Poisson's ratio (Pd: 0.39).

    Returns
    -------
    numpy.ndarray
        ``(2, *y.shape)``; the superposition of the isotropic-elasticity fields, with
        the cut of each core along ``-b`` from it.
    """
    u, _ = _dislocation_fields(y, x, cores, burgers, poisson)
    return u


def _dislocation_fields(y, x, cores, burgers, poisson):
    y, x = np.broadcast_arrays(np.asarray(y, np.float64), np.asarray(x, np.float64))
    u = np.zeros((2, *y.shape))
    grad = np.zeros((2, 2, *y.shape))
    for core, b in zip(np.atleast_2d(cores), np.atleast_2d(burgers), strict=True):
        ui, gi = _edge_terms(y, x, core, b, poisson)
        u += np.stack(ui)
        grad += np.array(gi)
    return u, grad


@dataclass
class DislocationTruth(SyntheticTruth):
    """Ground truth of :func:`dislocation_sample`.

    Attributes
    ----------
    cores : numpy.ndarray
        ``(k, 2)`` core positions ``(y, x)`` in nm.
    burgers : numpy.ndarray
        ``(k, 2)`` Burgers vectors ``(by, bx)`` in nm (``b = ∮ du`` counter-clockwise on
        screen).
    displacement : numpy.ndarray
        ``(2, H, W)`` displacement ``(uy, ux)`` in nm at every pixel (``P_j = -2π g_j·u``
        plus the fringe's phase).
    poisson : float
        Poisson's ratio of the field.
    """

    cores: np.ndarray = None
    burgers: np.ndarray = None
    displacement: np.ndarray = None
    poisson: float = 0.39


def dislocation_sample(
    shape=(1024, 1024),
    *,
    pixel_size: float = 0.02,
    cores=None,
    burgers=None,
    radius: float = 9.0,
    poisson: float = 0.39,
    rotation: float = 10.0,
    amplitudes=(0.2, 0.2, 0.12),
    noise: float = 0.1,
    amorphous: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, DislocationTruth]:
    """A Pd [110] particle with edge dislocations of known core and Burgers vector.

    The lattice of :func:`pd_110_reflections` is displaced by the isotropic-elasticity
    field of straight edge dislocations along the beam (:func:`edge_dislocation_displacement`):
    the image position ``r`` shows the reference lattice at ``r - u(r)``.  Burgers
    vectors must be lattice translations (:func:`lattice_translations`), so that the
    fringes close round every core.  Noise as :func:`synthetic_lattice`: default fringe
    amplitude 0.2 over white noise 0.1 per pixel (fringe SNR 2) on an amorphous film.

    Parameters
    ----------
    shape : tuple of int
        Image size ``(y, x)`` in pixels.
    pixel_size : float
        Pixel size in nm.
    cores : array_like, optional
        ``(k, 2)`` core positions ``(y, x)`` in nm; default three cores.
    burgers : array_like, optional
        ``(k, 2)`` Burgers vectors ``(by, bx)`` in nm; default ``a_1 - a_2`` (the
        a/2⟨110⟩ perfect dislocation, 0.275 nm), ``a_2`` and ``-(a_1 + a_2)``.
    radius : float
        Particle radius in nm (the crystal is the disc; the film is everywhere).
    poisson : float
        Poisson's ratio.
    rotation, noise, amorphous, seed
        As in :func:`pd_core_shell_sample`: orientation of the 002 reflection (°),
        white noise and amorphous film standard deviations, random seed.
    amplitudes : tuple of float
        Fringe amplitudes of the three reflections.

    Returns
    -------
    image : numpy.ndarray
        The float32 image, of ``shape``.
    truth : DislocationTruth
        Local ``g`` per pixel, cores, Burgers vectors and displacement.

    Raises
    ------
    ValueError
        If a Burgers vector is not a lattice translation, or cores and Burgers vectors
        do not match.
    """
    refl = pd_110_reflections(rotation)
    h, w = int(shape[0]), int(shape[1])
    center = np.array([h * pixel_size / 2, w * pixel_size / 2])
    basis = lattice_translations(refl)
    if cores is None:
        cores = center + np.array([[-3.1, -2.3], [2.7, -3.4], [0.6, 3.3]])
    if burgers is None:
        burgers = np.stack([basis[0] - basis[1], basis[1], -(basis[0] + basis[1])])
    cores = np.atleast_2d(np.asarray(cores, dtype=np.float64))
    burgers = np.atleast_2d(np.asarray(burgers, dtype=np.float64))
    if cores.shape != burgers.shape or cores.shape[1] != 2:
        raise ValueError(
            f"cores and burgers must both be (k, 2), got {cores.shape} and {burgers.shape}"
        )
    turns = refl @ burgers.T
    if not np.allclose(turns, np.round(turns), atol=1e-9):
        raise ValueError(
            f"Burgers vectors {burgers.tolist()} nm are not lattice translations: "
            f"g·b = {np.round(turns.T, 4).tolist()} (must be integers)"
        )

    fields = {}

    def field(yy, xx):
        # synthetic_lattice asks for the mapping and its Jacobian on the same grid.
        key = (yy.shape, float(yy.flat[-1]), float(xx.flat[-1]))
        if key not in fields:
            fields.clear()
            fields[key] = _dislocation_fields(yy, xx, cores, burgers, poisson)
        return fields[key]

    def mapping(yy, xx):
        # The cut of θ is harmless for the fringes since g·b is an integer for each.
        u = field(yy, xx)[0]
        return yy - u[0], xx - u[1]

    def jacobian(yy, xx):
        return np.eye(2)[:, :, None, None] - field(yy, xx)[1]

    def disc(yy, xx):
        return np.hypot(yy - center[0], xx - center[1]) <= radius

    image, truth = synthetic_lattice(
        (h, w),
        pixel_size=pixel_size,
        reflections=refl,
        amplitudes=list(amplitudes),
        mapping=mapping,
        jacobian=jacobian,
        particle=disc,
        amorphous=amorphous,
        noise=noise,
        seed=seed,
        dtype=np.float32,
    )
    y, x = _pixel_grid((h, w), pixel_size)
    u = field(y, x)[0]
    return image, DislocationTruth(
        g=truth.g,
        reflections=refl,
        particle=truth.particle,
        pixel_size=float(pixel_size),
        cores=cores,
        burgers=burgers,
        displacement=u,
        poisson=float(poisson),
    )


# --------------------------------------------------------------------------------------
# Synthetic in-situ movies
# --------------------------------------------------------------------------------------

__all__ += ["MovieTruth", "random_walk_drift", "synthetic_movie"]


@dataclass
class MovieTruth:
    """Ground truth of a synthetic movie made by :func:`synthetic_movie`.

    Frame ``k`` is the lattice of frame 0 expanded by ``expansion[k]`` (about the
    particle centre), rotated by ``rotation[k]`` and rigidly moved by ``drift[k]``:
    ``frame_k(r) = undrifted_k(r - drift[k])``.

    Attributes
    ----------
    reflections : numpy.ndarray
        Reference reflections ``(n, 2)`` of the unexpanded lattice, nm⁻¹.
    expansion : numpy.ndarray
        Lattice expansion per frame ``(t,)`` (0.035 = +3.5 % spacing).
    rotation : numpy.ndarray
        Lattice rotation per frame ``(t,)`` in degrees, counter-clockwise on screen.
    drift : numpy.ndarray
        Rigid displacement of the content per frame ``(t, 2)`` as ``(dy, dx)`` in pixels,
        relative to frame 0 (``drift[0] == 0``).
    shape : tuple of int
        Frame shape ``(H, W)`` in pixels.
    pixel_size : float
        Pixel size in nm.
    center : tuple of float
        Particle centre ``(y, x)`` in nm in frame 0 (it moves with the drift).
    radius : float or None
        Particle radius in nm; None when the crystal fills the frame.
    core_radius : float or None
        For a core-shell particle, the radius (nm) of the core that keeps the reference
        lattice (it still rotates); None for a uniform expansion.
    shell_width : float
        Width (nm) of the logistic core-shell transition.
    """

    reflections: np.ndarray
    expansion: np.ndarray
    rotation: np.ndarray
    drift: np.ndarray
    shape: tuple[int, int]
    pixel_size: float
    center: tuple[float, float]
    radius: float | None
    core_radius: float | None
    shell_width: float

    @property
    def n_frames(self) -> int:
        """Number of frames ``t``."""
        return int(self.expansion.shape[0])

    @property
    def g(self) -> np.ndarray:
        """Expected reciprocal vectors ``(t, n, 2)`` in nm⁻¹ of the expanded lattice.

        For a uniform expansion this is the lattice everywhere in the particle; for a
        core-shell particle it is the fully expanded shell.
        """
        return _expanded_g(self.reflections, self.expansion, self.rotation)

    @property
    def core_g(self) -> np.ndarray:
        """Reciprocal vectors ``(t, n, 2)`` of the core of a core-shell particle (rotation only).

        Equal to :attr:`g` for a uniform expansion.
        """
        if self.core_radius is None:
            return self.g
        return _expanded_g(self.reflections, np.zeros_like(self.expansion), self.rotation)

    @property
    def d_spacing(self) -> np.ndarray:
        """Expected spacing ``(t, n)`` in nm (shell value for a core-shell particle)."""
        g = self.g
        return 1.0 / np.hypot(g[..., 0], g[..., 1])

    @property
    def angle(self) -> np.ndarray:
        """Expected angle ``(t, n)`` in degrees (``atan2(-gy, gx)``), in (-180, 180]."""
        from .reciprocal import g_angle

        return g_angle(self.g)

    def _mapping(self, frame: int) -> Mapping:
        return _movie_mapping(
            frame_drift_nm=self.drift[frame] * self.pixel_size,
            center=self.center,
            expansion=float(self.expansion[frame]),
            rotation=float(self.rotation[frame]),
            core_radius=self.core_radius,
            shell_width=self.shell_width,
        )

    def particle(self, frame: int) -> np.ndarray:
        """Boolean ``(H, W)`` mask of the crystal in ``frame`` (it follows the drift)."""
        y, x = _pixel_grid(self.shape, self.pixel_size)
        return _particle_mask(y, x, self.center, self.drift[frame] * self.pixel_size, self.radius)

    def local_g(self, frame: int) -> np.ndarray:
        """Exact local reciprocal vectors ``(n, H, W, 2)`` in nm⁻¹ of ``frame``."""
        y, x = _pixel_grid(self.shape, self.pixel_size)
        return _local_g(self._mapping(frame), y, x, self.reflections, h=1e-3 * self.pixel_size)


def _expanded_g(reflections, expansion, rotation) -> np.ndarray:
    """Reciprocal vectors ``(t, n, 2)``: expanded by ``expansion``, rotated ``rotation`` deg."""
    from .reciprocal import g_angle, g_spacing

    d = g_spacing(reflections)[None, :] * (1.0 + np.asarray(expansion)[:, None])
    ang = g_angle(reflections)[None, :] + np.asarray(rotation)[:, None]
    return g_from_spacing_angle(d, ang)


def _pixel_grid(shape, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = int(shape[0]), int(shape[1])
    y = np.arange(h, dtype=np.float64)[:, None] * pixel_size + np.zeros((1, w))
    x = np.arange(w, dtype=np.float64)[None, :] * pixel_size + np.zeros((h, 1))
    return y, x


def _particle_mask(y, x, center, drift_nm, radius) -> np.ndarray:
    if radius is None:
        return np.ones(y.shape, dtype=bool)
    return np.hypot(y - center[0] - drift_nm[0], x - center[1] - drift_nm[1]) <= radius


def _particle_weight(y, x, center, drift_nm, radius, edge) -> np.ndarray:
    """Projected-thickness profile of the particle: 1 inside, 0 outside, soft edge (nm)."""
    if radius is None:
        return np.ones(y.shape)
    from scipy.special import erfc

    rho = np.hypot(y - center[0] - drift_nm[0], x - center[1] - drift_nm[1])
    return 0.5 * erfc((rho - radius) / edge)


def _movie_mapping(
    *, frame_drift_nm, center, expansion: float, rotation: float, core_radius, shell_width
) -> Mapping:
    """Image position (nm) → reference lattice of one frame: undo drift, rotation, expansion.

    Evaluating the lattice at ``r - drift`` moves the pattern rigidly and exactly, with no
    interpolation.
    """
    cy, cx = center
    ddy, ddx = float(frame_drift_nm[0]), float(frame_drift_nm[1])
    rotate = rotation_mapping(rotation, center=(0.0, 0.0))

    def mapping(y, x):
        dy, dx = y - ddy - cy, x - ddx - cx
        ry, rx = rotate(dy, dx)
        if core_radius is None:
            scale = 1.0 + expansion
        else:
            rho = np.hypot(dy, dx)
            scale = 1.0 + expansion / (1.0 + np.exp(-(rho - core_radius) / shell_width))
        return cy + ry / scale, cx + rx / scale

    return mapping


def random_walk_drift(n_frames: int, max_step: float, *, seed: int = 0) -> np.ndarray:
    """A seeded random-walk drift, ``(n_frames, 2)`` as ``(dy, dx)`` in pixels.

    Parameters
    ----------
    n_frames : int
        Number of frames.
    max_step : float
        Largest displacement between consecutive frames, in pixels; each step has a
        uniformly random direction and a length uniform in ``[0, max_step]``.
    seed : int
        Seed of the random generator.

    Returns
    -------
    numpy.ndarray
        Cumulative drift relative to frame 0 (first row zero), pixels.
    """
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if not np.isfinite(max_step) or max_step < 0:
        raise ValueError(f"max_step must be a finite number of pixels >= 0, got {max_step}")
    rng = np.random.default_rng([int(seed), 1])
    length = rng.uniform(0.0, max_step, n_frames - 1)
    direction = rng.uniform(0.0, 2 * np.pi, n_frames - 1)
    steps = np.stack([length * np.sin(direction), length * np.cos(direction)], axis=-1)
    return np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def _texture_spectrum(padded_shape, pixel_size: float, seed: int) -> np.ndarray:
    """Half spectrum of a periodic amorphous texture of unit variance on ``padded_shape``."""
    rng = np.random.default_rng([int(seed), 3])
    spec = np.fft.rfft2(rng.standard_normal(padded_shape))
    ky = np.fft.fftfreq(padded_shape[0], d=pixel_size)[:, None]
    kx = np.fft.rfftfreq(padded_shape[1], d=pixel_size)[None, :]
    k = np.hypot(ky, kx)
    # Same envelope as the still images (amorphous carbon speckle around 3 nm⁻¹).
    spec *= np.exp(-(((k - 3.0) / 2.0) ** 2)) + 0.3 * np.exp(-((k / 1.0) ** 2))
    spec[0, 0] = 0.0
    # Parseval on the half spectrum: interior columns stand for two conjugate bins.
    weight = np.full(spec.shape[1], 2.0)
    weight[0] = 1.0
    if padded_shape[1] % 2 == 0:
        weight[-1] = 1.0
    var = float(np.sum(weight * np.abs(spec) ** 2)) / float(np.prod(padded_shape)) ** 2
    return spec / np.sqrt(var)


def _movie_frames(
    frames,
    *,
    shape,
    pixel_size,
    reflections,
    amplitudes,
    phases,
    expansion,
    rotation,
    drift,
    center,
    radius,
    core_radius,
    shell_width,
    edge,
    contrast,
    mean,
    amorphous,
    texture_pad,
    noise,
    seed,
    dtype,
) -> np.ndarray:
    """Render the frames with indices ``frames`` (1-D int array) as ``(len(frames), H, W)``."""
    h, w = int(shape[0]), int(shape[1])
    y, x = _pixel_grid(shape, pixel_size)
    out = np.empty((len(frames), h, w), dtype=dtype)
    spec = None
    if amorphous:
        padded = (h + texture_pad, w + texture_pad)
        spec = _texture_spectrum(padded, pixel_size, seed)
        ky = np.fft.fftfreq(padded[0])[:, None]
        kx = np.fft.rfftfreq(padded[1])[None, :]
    for i, k in enumerate(np.asarray(frames, dtype=int).ravel()):
        drift_nm = drift[k] * pixel_size
        mapping = _movie_mapping(
            frame_drift_nm=drift_nm,
            center=center,
            expansion=float(expansion[k]),
            rotation=float(rotation[k]),
            core_radius=core_radius,
            shell_width=shell_width,
        )
        ry, rx = mapping(y, x)
        fringes = np.zeros((h, w))
        for j in range(reflections.shape[0]):
            arg = 2 * np.pi * (reflections[j, 0] * ry + reflections[j, 1] * rx) + phases[j]
            fringes += amplitudes[j] * np.cos(arg)
        inside = _particle_weight(y, x, center, drift_nm, radius, edge)
        image = mean * (1.0 + contrast * inside) + inside * fringes
        if spec is not None:
            # A Fourier phase ramp evaluates the band-limited periodic texture exactly at
            # r - drift; the padding keeps the periodic wrap out of sight.
            ramp = np.exp(-2j * np.pi * (ky * drift[k, 0] + kx * drift[k, 1]))
            tex = np.fft.irfft2(spec * ramp, s=(h + texture_pad, w + texture_pad))
            image += amorphous * tex[:h, :w]
        if noise:
            image += noise * np.random.default_rng([int(seed), 2, int(k)]).standard_normal((h, w))
        out[i] = image
    return out


def synthetic_movie(
    n_frames: int,
    shape,
    *,
    pixel_size: float,
    reflections,
    amplitudes=None,
    expansion_total: float = 0.035,
    rotation_total: float = 0.0,
    drift=None,
    radius: float | None = None,
    core_radius: float | None = None,
    shell_width: float = 0.3,
    edge: float | None = None,
    contrast: float = -0.15,
    mean: float = 1.0,
    amorphous: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
    lazy: bool = True,
    dtype=np.float32,
):
    """Make an in-situ movie ``(t, H, W)`` of an expanding, rotating, drifting crystal.

    Frame ``k`` of ``t`` shows the lattice expanded by ``expansion_total · k/(t-1)`` and
    rotated by ``rotation_total · k/(t-1)`` about the particle centre, moved rigidly by
    ``drift[k]``.  The lattice and the particle are evaluated analytically at
    ``r - drift[k]`` and the amorphous film is shifted by an exact Fourier phase ramp, so
    a sub-pixel drift carries no interpolation error.  White noise is drawn anew for
    every frame.

    Parameters
    ----------
    n_frames : int
        Number of frames ``t`` (>= 1).
    shape : tuple of int
        Frame size ``(H, W)`` in pixels.
    pixel_size : float
        Pixel size in nm.
    reflections : array_like
        Reflections ``(n, 2)`` of frame 0 as ``(gy, gx)`` in nm⁻¹.
    amplitudes : array_like, optional
        Fringe amplitude per reflection (default 0.2, in units of the mean intensity).
    expansion_total : float
        Lattice expansion reached in the last frame (0.035 = +3.5 % spacing).
    rotation_total : float
        Lattice rotation reached in the last frame, degrees counter-clockwise on screen.
    drift : array_like or float, optional
        Rigid displacement of the content: an array ``(t, 2)`` of ``(dy, dx)`` in pixels
        relative to frame 0, or a number giving the largest step between frames (pixels)
        of a seeded random walk (:func:`random_walk_drift`).  Default: no drift.
    radius : float, optional
        Radius of a round particle in nm, centred in frame 0; default: crystal everywhere.
    core_radius : float, optional
        If given, only the shell beyond this radius (nm) expands (core-shell particle);
        default: the whole crystal expands uniformly.
    shell_width : float
        Width of the core-shell transition in nm.
    edge : float, optional
        Width (nm) of the soft particle edge, over which fringes and contrast fade out
        (default two pixels); a real particle is not a sharp-edged disc, and a sharp
        edge aliases differently at every sub-pixel position.
    contrast : float
        Relative change of the mean intensity inside the particle (mass-thickness
        contrast; -0.15 = 15 % darker).  Ignored without ``radius``.
    mean : float
        Mean intensity.
    amorphous : float
        Standard deviation of an amorphous-film texture that drifts with the particle.
    noise : float
        Standard deviation of white noise per pixel, new in every frame.
    seed : int
        Seed of every random choice (fringe phases, texture, noise, random-walk drift).
    lazy : bool
        If True return a dask array generated frame by frame (chunks ``(1, H, W)``);
        otherwise a numpy array.
    dtype : numpy dtype
        Output dtype (default float32).

    Returns
    -------
    stack : dask.array.Array or numpy.ndarray
        The movie ``(t, H, W)``.
    truth : MovieTruth
        Expansion, rotation and drift per frame, and the expected g per frame and reflection.

    Raises
    ------
    ValueError
        If ``n_frames``, ``shape``, ``pixel_size``, ``drift`` or a radius is invalid.
    """
    from functools import partial

    n = int(n_frames)
    if n < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise ValueError(f"shape must be (H, W) with positive sizes in pixels, got {shape}")
    h, w = int(shape[0]), int(shape[1])
    if not np.isfinite(pixel_size) or pixel_size <= 0:
        raise ValueError(f"pixel_size must be a positive number of nm, got {pixel_size}")
    refl = as_reflections(reflections)
    n_refl = refl.shape[0]
    amps = np.broadcast_to(0.2 if amplitudes is None else amplitudes, (n_refl,)).astype(float)
    if drift is None:
        drift_px = np.zeros((n, 2))
    elif np.ndim(drift) == 0:
        drift_px = random_walk_drift(n, float(drift), seed=seed)
    else:
        drift_px = np.asarray(drift, dtype=np.float64)
        if drift_px.shape != (n, 2) or not np.all(np.isfinite(drift_px)):
            raise ValueError(
                f"drift must be finite (dy, dx) pixels of shape ({n}, 2), got {drift_px.shape}"
            )
    for name, value in (("radius", radius), ("core_radius", core_radius)):
        if value is not None and (not np.isfinite(value) or value <= 0):
            raise ValueError(f"{name} must be a positive number of nm or None, got {value}")
    if shell_width <= 0:
        raise ValueError(f"shell_width must be > 0 nm, got {shell_width}")
    edge = 2.0 * float(pixel_size) if edge is None else float(edge)
    if not np.isfinite(edge) or edge <= 0:
        raise ValueError(f"edge must be a positive width in nm or None, got {edge}")
    frac = np.arange(n) / (n - 1) if n > 1 else np.zeros(1)
    expansion = float(expansion_total) * frac
    rotation = float(rotation_total) * frac
    center = (h * pixel_size / 2, w * pixel_size / 2)
    phases = np.random.default_rng([int(seed), 0]).uniform(0, 2 * np.pi, n_refl)
    # Room for the drift plus a margin, rounded up for fast FFT sizes.
    reach = float(np.max(np.abs(drift_px - drift_px.mean(axis=0)))) if n > 1 else 0.0
    texture_pad = int(64 * np.ceil((2 * reach + 64) / 64))
    render = partial(
        _movie_frames,
        shape=(h, w),
        pixel_size=float(pixel_size),
        reflections=refl,
        amplitudes=amps,
        phases=phases,
        expansion=expansion,
        rotation=rotation,
        drift=drift_px,
        center=center,
        radius=radius,
        core_radius=core_radius,
        shell_width=float(shell_width),
        edge=edge,
        contrast=float(contrast) if radius is not None else 0.0,
        mean=float(mean),
        amorphous=float(amorphous),
        texture_pad=texture_pad,
        noise=float(noise),
        seed=int(seed),
        dtype=np.dtype(dtype),
    )
    truth = MovieTruth(
        reflections=refl,
        expansion=expansion,
        rotation=rotation,
        drift=drift_px,
        shape=(h, w),
        pixel_size=float(pixel_size),
        center=center,
        radius=None if radius is None else float(radius),
        core_radius=None if core_radius is None else float(core_radius),
        shell_width=float(shell_width),
    )
    if not lazy:
        return render(np.arange(n)), truth
    import dask.array as da

    stack = da.arange(n, chunks=1).map_blocks(
        render,
        new_axis=[1, 2],
        chunks=((1,) * n, (h,), (w,)),
        dtype=np.dtype(dtype),
        meta=np.empty((0, 0, 0), dtype=dtype),
        name="synthetic-movie",
    )
    return stack, truth
