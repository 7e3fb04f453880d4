"""Every real instrument file in shared/data opens with the calibration its README gives.

Expected numbers are the "correct calibration" column of shared/data/README.md, at full
precision from the raw header values it quotes (or from rsciio_report.json where rsciio
is right), converted to nm or 1/nm. Scales are compared with rel. tol. 1e-6, offsets
with rel. tol. 1e-6 (abs. 1e-9).
"""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from napari_hrtem_fft import Micrograph, read_micrographs
from napari_hrtem_fft.io import MicrographReadError

RTOL = 1e-6
NM, RNM, PX = "nm", "1/nm", "px"

# file: (count, shape, scale, units, calibrated, translate or None (= not asserted))
EXPECTED = {
    # DM3: DigitalMicrograph calibrations; offset = -origin * scale.
    "dm3/test_STEM_image.dm3": (
        1,
        (68, 68),
        (0.24853801727294922,) * 2,
        (NM, NM),
        True,
        (42.500000953674316, 51.44736957550049),
    ),
    "dm3/test_dm_image_um_unit.dm3": (
        1,
        (68, 68),
        (168.67469251155853,) * 2,
        (NM, NM),
        True,
        (128192.76630878448, 139662.64539957047),
    ),
    "dm3/test_diffraction_pattern.dm3": (
        1,
        (87, 87),
        (0.17443285882472992,) * 2,
        (RNM, RNM),
        True,
        (131.87124127149582, 137.10422703623772),
    ),
    "dm3/multi_signal.dm3": (
        1,
        (512, 512),
        (0.017751578241586685,) * 2,
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "dm3/dmTest_float32_nonSquare_diffPixelSize.dm3": (
        1,
        (64, 128),
        (0.2, 1.0),
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "dm3/example_Se_implanted_MoS2.dm3": (
        1,
        (1024, 1024),
        (0.0126953125,) * 2,
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "dm3/PZO.dm3": (
        1,
        (525, 525),
        (0.015994541347026825,) * 2,
        (NM, NM),
        True,
        (14.8425507119141, 15.434348741754093),
    ),
    # DM4
    "dm4/PTO100-40nm-HAADF.dm4": (1, (258, 244), (0.016, 0.016), (NM, NM), True, (0.0, 0.0)),
    "dm4/dmTest_float32_nonSquare_diffPixelSize.dm4": (
        1,
        (64, 128),
        (0.2, 1.0),
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "dm4/dmTest_3D_int16_64,65,66.dm4": (
        1,
        (66, 65, 64),
        (4000.0, 3.0, 0.002),
        (NM, NM, NM),
        True,
        (0.0, 0.0, 0.0),
    ),
    "dm4/test-MonarcCL_mono-image.dm4": (
        1,
        (2, 2),
        (18325.349807739258,) * 2,
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "dm4/test-2.dm4": (1, (2, 2), (1.0, 1.0), (PX, PX), False, (0.0, 0.0)),
    # Velox: BinaryResult/PixelSize and Offset in m or 1/m.
    "velox_emd/Camera Ceta Imaging Micro.emd": (
        1,
        (512, 512),
        (3.1388370544495519,) * 2,
        (NM, NM),
        True,
        (-803.5422859390852,) * 2,
    ),
    "velox_emd/Camera Ceta Diffraction Micro.emd": (
        1,
        (512, 512),
        (0.11442968019923936,) * 2,
        (RNM, RNM),
        True,
        (-29.293998131005276,) * 2,
    ),
    "velox_emd/STEM HAADF Diffraction Micro.emd": (
        1,
        (128, 128),
        (87.370796142255832,) * 2,
        (NM, NM),
        True,
        (-5591.7309531043732,) * 2,
    ),
    "velox_emd/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd": (
        4,
        (128, 128),
        (87.370796142255832,) * 2,
        (NM, NM),
        True,
        (-5591.7309531043732,) * 2,
    ),
    # Berkeley EMD: n_m / [n_m] = nm.
    "ncem_emd/Acquisition_18.emd": (
        1,
        (1024, 1024),
        (0.012246524915099144,) * 2,
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "ncem_emd/Si100_2x1x1_3D.emd": (1, (22, 44), (0.25, 0.25), (NM, NM), True, (0.0, 0.0)),
    # TIA: CalibrationDelta/Offset in m (1/m for TEM diffraction); offsets in nm, not m.
    "tia/16_STOimage.emi": (
        1,
        (1024, 1024),
        (0.010012704240403384,) * 2,
        (NM, NM),
        True,
        (-5.126504571086532,) * 2,
    ),
    "tia/16_STOimage_1.ser": (
        1,
        (1024, 1024),
        (0.010012704240403384,) * 2,
        (NM, NM),
        True,
        (-5.126504571086532,) * 2,
    ),
    "tia/128x128-TEM_search.emi": (
        1,
        (128, 128),
        (5.261214205047081,) * 2,
        (NM, NM),
        True,
        (-336.7177091230945,) * 2,
    ),
    "tia/128x128-TEM_search_1.ser": (
        1,
        (128, 128),
        (5.261214205047081,) * 2,
        (NM, NM),
        True,
        (-336.7177091230945,) * 2,
    ),
    "tia/64x64_TEM_images_acquire.emi": (
        1,
        (64, 64),
        (6.281833616298531,) * 2,
        (NM, NM),
        True,
        (-201.0186757215619,) * 2,
    ),
    "tia/64x64_TEM_images_acquire_1.ser": (
        1,
        (64, 64),
        (6.281833616298531,) * 2,
        (NM, NM),
        True,
        (-201.0186757215619,) * 2,
    ),
    "tia/64x64_diffraction_acquire.emi": (
        1,
        (64, 64),
        (0.10157199619555664,) * 2,
        (RNM, RNM),
        True,
        (-3.2503038782573967,) * 2,
    ),
    "tia/64x64_diffraction_acquire_1.ser": (
        1,
        (64, 64),
        (0.10157199619555664,) * 2,
        (RNM, RNM),
        True,
        (-3.2503038782573967,) * 2,
    ),
    "tia/16x16_STEM_BF_DF_acquire.emi": (
        2,
        (16, 16),
        (21.510044070327744,) * 2,
        (NM, NM),
        True,
        (-172.08035256262196,) * 2,
    ),
    "tia/16x16_STEM_BF_DF_acquire_1.ser": (
        1,
        (16, 16),
        (21.510044070327744,) * 2,
        (NM, NM),
        True,
        (-172.08035256262196,) * 2,
    ),
    "tia/16x16_STEM_BF_DF_acquire_2.ser": (
        1,
        (16, 16),
        (21.510044070327744,) * 2,
        (NM, NM),
        True,
        (-172.08035256262196,) * 2,
    ),
    # MRC: voxel size in Å; -10 Å is Direct Electron's "uncalibrated".
    "mrc/HAADFscan.mrc": (1, (16, 16), (5.6791313,) * 2, (NM, NM), True, (0.0, 0.0)),
    "mrc/20241021_00405_final.mrc": (1, (4, 8), (1.0, 1.0), (PX, PX), False, (0.0, 0.0)),
    "mrc/EMD-3197.map": (1, (20, 20, 20), (1.14,) * 3, (NM, NM, NM), True, None),
    # TIFF
    "tiff/FEI-Helios-Ebeam-16bits.tif": (1, (442, 512), (3372.4,) * 2, (NM, NM), True, (0.0, 0.0)),
    "tiff/test_tiff_Zeiss_SEM_512pix.tif": (
        1,
        (384, 512),
        (11.649976,) * 2,
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "tiff/TVIPS_bin4.tif": (
        1,
        (1024, 1024),
        (1.4208036661148071,) * 2,
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "tiff/test_loading_image_saved_with_imageJ.tif": (
        1,
        (68, 68),
        (1e3 / 5.928571,) * 2,
        (NM, NM),
        True,
        (0.0, 0.0),
    ),
    "tiff/test_loading_image_saved_with_imageJ_no_scale.tif": (
        1,
        (68, 68),
        (1.0, 1.0),
        (PX, PX),
        False,
        (0.0, 0.0),
    ),
    "tiff/test_loading_image_saved_with_DM.tif": (
        1,
        (68, 68),
        (168.67469251155853,) * 2,
        (NM, NM),
        True,
        (128192.76428222656, 139662.6434326172),
    ),
    "tiff/optical_Zeiss_AxioVision_BW.tif": (1, (10, 13), (1.0, 1.0), (PX, PX), False, (0.0, 0.0)),
}

RECIPROCAL = {
    "dm3/test_diffraction_pattern.dm3",
    "velox_emd/Camera Ceta Diffraction Micro.emd",
    "tia/64x64_diffraction_acquire.emi",
    "tia/64x64_diffraction_acquire_1.ser",
}


def test_every_data_file_is_in_the_table(shared_data):
    on_disk = {
        p.relative_to(shared_data).as_posix()
        for p in shared_data.rglob("*")
        if p.is_file() and p.suffix not in (".md", ".json", ".txt")
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_calibration_matches_readme(shared_data, rel):
    count, shape, scale, units, calibrated, translate = EXPECTED[rel]
    images = read_micrographs(shared_data / rel)
    assert len(images) == count
    for mg in images:
        assert isinstance(mg, Micrograph)
        assert mg.shape == shape
        assert mg.units == units
        assert mg.calibrated is calibrated
        assert mg.reciprocal is (rel in RECIPROCAL)
        assert mg.metadata["reciprocal"] is mg.reciprocal
        for got, want in zip(mg.scale, scale, strict=True):
            assert got == pytest.approx(want, rel=RTOL)
        if translate is not None:
            for got, want in zip(mg.translate, translate, strict=True):
                assert got == pytest.approx(want, rel=RTOL, abs=1e-9)
        meta = mg.metadata
        assert meta["source_path"] == str((shared_data / rel).resolve())
        assert meta["format"]
        assert meta["pixel_size_source"].startswith("none") is not calibrated
        json.dumps(meta, allow_nan=False)  # JSON-serialisable, no NaN


def test_pixel_size_sources_name_the_origin_of_the_number(shared_data):
    src = {
        rel: read_micrographs(shared_data / rel)[0].metadata["pixel_size_source"]
        for rel in (
            "dm3/PZO.dm3",
            "tia/16_STOimage_1.ser",
            "velox_emd/Camera Ceta Imaging Micro.emd",
            "tiff/test_loading_image_saved_with_DM.tif",
            "tiff/test_tiff_Zeiss_SEM_512pix.tif",
        )
    }
    assert "Calibrations" in src["dm3/PZO.dm3"]
    assert "CalibrationDelta" in src["tia/16_STOimage_1.ser"]
    assert "m → nm" in src["tia/16_STOimage_1.ser"]
    assert "PixelSize" in src["velox_emd/Camera Ceta Imaging Micro.emd"]
    assert "65003" in src["tiff/test_loading_image_saved_with_DM.tif"]
    assert "1024 / width" in src["tiff/test_tiff_Zeiss_SEM_512pix.tif"]


def test_velox_four_detectors_are_four_named_layers(shared_data):
    images = read_micrographs(
        shared_data / "velox_emd/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"
    )
    assert sorted(m.metadata["title"] for m in images) == ["BF", "DF2", "DF4", "HAADF"]
    assert len({m.name for m in images}) == 4
    assert all(m.name.endswith(f"[{m.metadata['title']}]") for m in images)


def test_tia_emi_with_two_ser_gives_both_and_each_ser_alone_matches(shared_data):
    both = read_micrographs(shared_data / "tia/16x16_STEM_BF_DF_acquire.emi")
    assert [m.metadata["ser_file"] for m in both] == [
        "16x16_STEM_BF_DF_acquire_1.ser",
        "16x16_STEM_BF_DF_acquire_2.ser",
    ]
    for mg in both:
        (alone,) = read_micrographs(shared_data / "tia" / mg.metadata["ser_file"])
        np.testing.assert_array_equal(np.asarray(alone.data), np.asarray(mg.data))
        assert alone.metadata["tia_mode"] == mg.metadata["tia_mode"]


def test_tia_diffraction_is_reciprocal_from_emi_mode_and_stem_diffraction_is_real(shared_data):
    (diff,) = read_micrographs(shared_data / "tia/64x64_diffraction_acquire_1.ser")
    assert diff.metadata["tia_mode"].strip() == "TEM uP SA Zoom Diffraction"
    assert diff.reciprocal and diff.units == (RNM, RNM)
    (stem,) = read_micrographs(shared_data / "tia/16_STOimage_1.ser")
    assert stem.metadata["tia_mode"].strip().endswith("Diffraction")
    assert not stem.reciprocal and stem.units == (NM, NM)


def test_tia_ser_without_its_emi_still_gets_units_right(shared_data, tmp_path):
    # Without the .emi the magnitude decides: 1.0e8 (1/m) cannot be metres per pixel.
    for name, reciprocal, scale in (
        ("64x64_diffraction_acquire_1.ser", True, 0.10157199619555664),
        ("16_STOimage_1.ser", False, 0.010012704240403384),
    ):
        lone = tmp_path / name
        lone.write_bytes((shared_data / "tia" / name).read_bytes())
        (mg,) = read_micrographs(lone)
        assert mg.reciprocal is reciprocal
        assert mg.scale[-1] == pytest.approx(scale, rel=RTOL)
        assert any("no .emi" in n for n in mg.metadata["notes"])


def test_dm3_multi_signal_skips_the_1d_plot_and_says_so(shared_data):
    (mg,) = read_micrographs(shared_data / "dm3/multi_signal.dm3")
    assert mg.metadata["title"] == "HAADF"
    assert any("Plot" in n and "1-D" in n for n in mg.metadata["notes"])


def test_anisotropic_pixels_keep_both_axes_and_pixel_size_refuses(shared_data):
    for rel in (
        "dm3/dmTest_float32_nonSquare_diffPixelSize.dm3",
        "dm4/dmTest_float32_nonSquare_diffPixelSize.dm4",
    ):
        (mg,) = read_micrographs(shared_data / rel)
        assert mg.scale == pytest.approx((0.2, 1.0), rel=RTOL)
        with pytest.raises(ValueError, match="anisotropic"):
            _ = mg.pixel_size


def test_pixel_size_property(shared_data):
    (mg,) = read_micrographs(shared_data / "dm3/example_Se_implanted_MoS2.dm3")
    assert mg.pixel_size == pytest.approx(0.0126953125, rel=RTOL)
    (unc,) = read_micrographs(shared_data / "dm4/test-2.dm4")
    with pytest.raises(ValueError, match="no pixel-size calibration"):
        _ = unc.pixel_size
    (diff,) = read_micrographs(shared_data / "dm3/test_diffraction_pattern.dm3")
    with pytest.raises(ValueError, match="not a real-space image"):
        _ = diff.pixel_size


def test_berkeley_emd_keeps_the_file_orientation(shared_data):
    # dim1 is Y and dim2 is X in Acquisition_18: the raw dataset is already (y, x).
    path = shared_data / "ncem_emd/Acquisition_18.emd"
    (mg,) = read_micrographs(path)
    with h5py.File(path, "r") as f:
        raw = f["data/single/data"][()]
    np.testing.assert_array_equal(mg.data, raw)
    # Prismatic stores (R_x, R_y): transposed to (y, x).
    path = shared_data / "ncem_emd/Si100_2x1x1_3D.emd"
    (mg,) = read_micrographs(path)
    with h5py.File(path, "r") as f:
        raw = f["4DSTEM_simulation/data/realslices/annular_detector_depth0000/realslice"][()]
    np.testing.assert_array_equal(mg.data, raw.T)


def test_fei_databar_is_cropped_and_reported(shared_data):
    path = shared_data / "tiff/FEI-Helios-Ebeam-16bits.tif"
    (cropped,) = read_micrographs(path)
    assert cropped.metadata["databar_height"] == 29
    assert cropped.metadata["databar_rows_removed"] == 29
    (full,) = read_micrographs(path, crop_databar=False)
    assert full.shape == (471, 512)
    assert full.metadata["databar_rows_removed"] == 0
    np.testing.assert_array_equal(full.data[:442], cropped.data)


def test_dpi_tags_never_become_a_pixel_size(shared_data):
    (plain,) = read_micrographs(shared_data / "tiff/optical_Zeiss_AxioVision_BW.tif")
    assert plain.metadata["tiff_resolution_ignored"]["x"] == pytest.approx(150)
    (dm,) = read_micrographs(shared_data / "tiff/test_loading_image_saved_with_DM.tif")
    assert dm.metadata["tiff_resolution_ignored"]["x"] == pytest.approx(72)
    assert dm.scale[-1] == pytest.approx(168.67469251155853, rel=RTOL)


def test_eight_bit_images_keep_their_dtype_and_layer_kwargs_force_grey(shared_data):
    for rel in (
        "tiff/TVIPS_bin4.tif",
        "tiff/test_tiff_Zeiss_SEM_512pix.tif",
        "tiff/optical_Zeiss_AxioVision_BW.tif",
    ):
        (mg,) = read_micrographs(shared_data / rel)
        assert mg.data.dtype == np.uint8
        kwargs = mg.layer_kwargs()
        assert kwargs["rgb"] is False
        assert kwargs["multiscale"] is False
        assert set(kwargs) == {
            "name",
            "scale",
            "translate",
            "units",
            "metadata",
            "rgb",
            "multiscale",
        }


def test_layer_kwargs_carry_calibration(shared_data):
    (mg,) = read_micrographs(shared_data / "velox_emd/Camera Ceta Diffraction Micro.emd")
    kw = mg.layer_kwargs()
    assert kw["units"] == (RNM, RNM)
    assert kw["scale"] == mg.scale and kw["translate"] == mg.translate
    assert kw["metadata"]["reciprocal"] is True
    (unc,) = read_micrographs(shared_data / "mrc/20241021_00405_final.mrc")
    assert unc.layer_kwargs()["units"] == ("pixel", "pixel")
    assert any("not positive" in n for n in unc.metadata["notes"])


def test_stack_from_dm4_is_lazy(shared_data):
    (mg,) = read_micrographs(shared_data / "dm4/dmTest_3D_int16_64,65,66.dm4")
    assert hasattr(mg.data, "dask")
    assert mg.data[3].compute().shape == (65, 64)


def test_public_api_exports():
    import napari_hrtem_fft as hf

    assert hf.read_micrographs is read_micrographs
    assert hf.Micrograph is Micrograph
    assert issubclass(MicrographReadError, ValueError)


def test_micrograph_validates_its_fields():
    data = np.zeros((4, 5))
    with pytest.raises(ValueError, match="scale has 1 entries"):
        Micrograph(data, (1.0,), (0.0, 0.0), ("nm", "nm"), True, False, "x")
    with pytest.raises(ValueError, match="finite and positive"):
        Micrograph(data, (1.0, -1.0), (0.0, 0.0), ("nm", "nm"), True, False, "x")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        Micrograph(np.zeros(3), (1.0,), (0.0,), ("nm",), True, False, "x")
    mg = Micrograph(data, (0.1, 0.1), (0, 0), ("nm", "nm"), True, False, "x")
    assert math.isclose(mg.pixel_size, 0.1)
