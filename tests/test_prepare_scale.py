"""prepare at scale: pixels stream through a scratch memmap, outputs are the bytes np.save writes, heap memory stays
flat."""
import io
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from facelab.data import dataset, pixels, prepare
from facelab.data.dataset import load_images
from facelab.data.faces import generate_emotions
from facelab.data.pixels import PixelStore, save_rows
from facelab.params import parse_params


def np_save_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("chunk_bytes", [1, 5000, 2**30])  # one row a chunk, a few rows, everything at once
def test_save_rows_writes_the_bytes_np_save_writes_from_memory_or_a_memmap(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(pixels, "CHUNK_BYTES", chunk_bytes)
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    with PixelStore(50, 32, tmp_path / "scratch") as store:  # room for 50, 40 written: as when files are skipped
        for image in images:
            store.add(image)
        mapped = store.pixels()
    assert isinstance(mapped, np.memmap) and mapped.shape == (40, 32, 32, 3) and not mapped.flags.writeable
    rows = np.array([0, 3, 4, 17, 38, 39])
    for source in (images, mapped):
        save_rows(tmp_path / "x.npy", source, rows)
        assert (tmp_path / "x.npy").read_bytes() == np_save_bytes(images[rows])


def test_pixel_store_refuses_a_wrong_image_or_one_too_many(tmp_path):
    with PixelStore(1, 32, tmp_path / "scratch") as store:
        with pytest.raises(ValueError, match=r"image 1 of at most 1: expected \(32, 32, 3\) uint8, "
                                             r"got \(32, 32\) uint8"):
            store.add(np.zeros((32, 32), np.uint8))
        store.add(np.zeros((32, 32, 3), np.uint8))
        with pytest.raises(ValueError, match="image 2 of at most 1"):
            store.add(np.zeros((32, 32, 3), np.uint8))


def test_prepare_loads_into_a_memmap_and_writes_the_in_memory_arrays(tiny_params, tmp_path, monkeypatch):
    loaded, load = [], load_images

    def keep_loaded(*args):
        loaded.append(load(*args))
        return loaded[-1]

    monkeypatch.setattr(prepare, "load_images", keep_loaded)
    data, seed = tiny_params.data["emotion"], tiny_params.data_seed
    prepare.prepare_task("emotion", data, seed, tmp_path / "out")
    assert isinstance(loaded[0].pixels, np.memmap)
    out = tmp_path / "out"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the scratch file beside it is gone
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "groups.npy", "images.npy", "labels.npy",
                                                     "manifest.csv"]
    reference, labels = generate_emotions(data.generated.n_images, data.generated.n_identities, data.img_size, seed,
                                          difficulty=data.generated.difficulty)  # one array in memory, as before
    manifest = pd.read_csv(out / "manifest.csv")
    rows = manifest["file"].str.extract(r"(\d+)\.png$")[0].astype(int).to_numpy()
    assert (out / "images.npy").read_bytes() == np_save_bytes(reference[rows])
    assert (out / "labels.npy").read_bytes() == np_save_bytes(labels[rows])


def heap_peak(run) -> int:
    """The most bytes Python and numpy held on the heap at once during run() (tracemalloc counts numpy's buffers;
    pages of a memmap are not heap)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.e2e  # prepares 1,060 images under tracemalloc: about 3.5 s
def test_prepare_heap_stays_well_under_the_decoded_data(tiny_raw, tmp_path, monkeypatch):
    # Counted in bytes allocated, not in time or resident memory, so the bound does not depend on the machine.
    monkeypatch.setattr(pixels, "CHUNK_BYTES", 2**16)

    def run(n_images):
        tiny_raw["data"]["face"]["generated"]["n_images"] = n_images
        data = parse_params(tiny_raw).data["face"]
        return lambda: prepare.prepare_task("face", data, 0, tmp_path / "out", tmp_path / "data.json")

    run(60)()  # first calls import and cache things; not what is measured
    n_images = 1000
    decoded = n_images * 32 * 32 * 3
    # Holding every image once would be `decoded` (before the scratch file, prepare peaked near 2.8x that); now the
    # peak is the near-duplicate search: 14 hashes of 32 bytes per image (the flips and the crop windows of
    # facelab.data.near, whatever the image size) besides the names and digests of the images (about 1.3 MB here).
    assert heap_peak(run(n_images)) < decoded / 2


def test_a_failed_write_leaves_the_old_outputs_and_no_scratch(tiny_params, tmp_path, monkeypatch):
    data, seed = tiny_params.data["emotion"], tiny_params.data_seed
    prepare.prepare_task("emotion", data, seed, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}

    def disk_full(path, pixels, rows):
        path.write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(dataset, "save_rows", disk_full)
    with pytest.raises(OSError, match="No space left"):
        prepare.prepare_task("emotion", data, seed, tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
