"""Pixel storage for prepare: images streamed one at a time to a scratch file (or memory), rows copied out to .npy
files in chunks."""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

# Pixel bytes held at once while rows are copied out: about 1,400 images at 64 px, whatever the data set's size.
CHUNK_BYTES = 16 * 2**20


class PixelStore:
    """Up to `capacity` (img_size, img_size, 3) uint8 images, added one at a time; `pixels()` returns those added.

    With a path, every image is appended to that file with an ordinary write and `pixels()` is a read-only
    np.memmap of it. Writing through a writable memmap would be simpler, but every page written that way stays
    resident in this process until the map is closed, so memory would grow with the data set after all.
    Without a path, the images go into one array in memory."""

    def __init__(self, capacity: int, img_size: int, path: Path | None = None):
        self.shape, self.capacity, self.count, self.path = (img_size, img_size, 3), capacity, 0, path
        self.array = np.empty((capacity, *self.shape), np.uint8) if path is None else None
        # the store owns the file, and is itself the context manager that closes it (__exit__)
        self.file: BinaryIO | None = None if path is None else open(path, "wb")  # noqa: SIM115

    def __enter__(self) -> PixelStore:
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()

    def add(self, image: np.ndarray) -> None:
        if image.shape != self.shape or image.dtype != np.uint8 or self.count == self.capacity:
            raise ValueError(f"image {self.count + 1} of at most {self.capacity}: expected {self.shape} uint8, "
                             f"got {image.shape} {image.dtype}")
        if self.file is not None:
            self.file.write(np.ascontiguousarray(image).data)
        else:
            assert self.array is not None  # no path: the images are held in memory
            self.array[self.count] = image
        self.count += 1

    def pixels(self) -> np.ndarray:
        """(count, img_size, img_size, 3) uint8: the images added so far."""
        if self.file is None or self.path is None:
            assert self.array is not None  # no path: the images are held in memory
            return self.array[:self.count]
        self.file.flush()
        if self.count == 0:  # an empty file cannot be mapped
            return np.empty((0, *self.shape), np.uint8)
        return np.memmap(self.path, np.uint8, "r", shape=(self.count, *self.shape))


def save_rows(path: Path, pixels: np.ndarray, rows: np.ndarray) -> None:
    """np.save(path, pixels[rows]), byte for byte, holding at most CHUNK_BYTES of the rows in memory at a time.

    pixels: an array, or a memmap as PixelStore.pixels returns it."""
    header = {"descr": np.lib.format.dtype_to_descr(pixels.dtype), "fortran_order": False,
              "shape": (len(rows), *pixels.shape[1:])}
    step = max(1, CHUNK_BYTES // row_bytes(pixels))
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for start in range(0, len(rows), step):
            out.write(take(pixels, rows[start:start + step]).data)


def take(pixels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """pixels[rows] as an array in memory. A memmap's rows are read from its file, not through the map: a page read
    through a map stays resident in this process while the map is open, and the kernel maps its neighbours too, so
    rows spread over the file would bring most of the file into this process's memory."""
    if not isinstance(pixels, np.memmap):
        return np.ascontiguousarray(pixels[rows])
    if pixels.filename is None:
        raise ValueError("take reads a memmap's rows from its file, but this memmap names none: map a file by path")
    out, size = np.empty((len(rows), *pixels.shape[1:]), pixels.dtype), row_bytes(pixels)
    with open(pixels.filename, "rb", buffering=0) as file:
        for i, row in enumerate(rows):
            file.seek(pixels.offset + int(row) * size)
            if file.readinto(out[i]) != size:
                raise OSError(f"'{pixels.filename}' ends before row {row}; it was changed while prepare ran")
    return out


def row_bytes(pixels: np.ndarray) -> int:
    return pixels.itemsize * int(np.prod(pixels.shape[1:]))
