"""store.designs: attaching a design file to a sample and recording its registration."""

from __future__ import annotations

import numpy as np
import pytest

from store import InvalidInputError, NotFoundError, Store


def _sample(store: Store) -> int:
    image = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    return store.add_sample(image, nm_per_px=4.0, source="upload").id


def test_attach_copies_the_file_into_the_workspace(store, tmp_path):
    sample_id = _sample(store)
    source = tmp_path / "site.gds"
    source.write_bytes(b"not really gds")
    design = store.attach_design(sample_id, source, cell="TOP", layer=(34, 0),
                                 center_nm=(100.0, -20.0), search_nm=200.0)
    source.unlink()
    assert store.design_file(design).read_bytes() == b"not really gds"
    assert store.sample_design(sample_id) == design
    assert design.registration is None and design.layer == (34, 0)


def test_registration_is_saved_and_reattaching_resets_it(store, tmp_path):
    sample_id = _sample(store)
    source = tmp_path / "site.oas"
    source.write_bytes(b"oasis")
    store.attach_design(sample_id, source, cell=None, layer=(33, 0), center_nm=(0.0, 0.0),
                        search_nm=100.0)
    saved = store.save_registration(sample_id, {"dx_nm": 4.0, "dy_nm": -8.0})
    assert saved.registration == {"dx_nm": 4.0, "dy_nm": -8.0}
    again = store.attach_design(sample_id, source, cell=None, layer=(33, 0),
                                center_nm=(10.0, 0.0), search_nm=100.0)
    assert again.registration is None and store.sample_design(sample_id).center_nm == (10.0, 0.0)


def test_bad_design_inputs_are_refused(store, tmp_path):
    sample_id = _sample(store)
    picture = tmp_path / "site.png"
    picture.write_bytes(b"png")
    with pytest.raises(InvalidInputError):
        store.attach_design(sample_id, picture, cell=None, layer=(34, 0), center_nm=(0.0, 0.0),
                            search_nm=100.0)
    with pytest.raises(NotFoundError):
        store.save_registration(sample_id, {"dx_nm": 0.0})
    assert store.sample_design(sample_id) is None
