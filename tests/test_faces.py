import numpy as np

from facelab.data.faces import generate_emotions, generate_face_identity


def test_face_identity_is_deterministic_and_imbalanced_about_one_in_six():
    pixels, labels = generate_face_identity(300, 1 / 6, 20, 48, seed=3)
    again, labels_again = generate_face_identity(300, 1 / 6, 20, 48, seed=3)
    assert pixels.shape == (300, 48, 48, 3) and pixels.dtype == np.uint8
    assert pixels.tobytes() == again.tobytes() and np.array_equal(labels, labels_again)
    assert labels.sum() == 50
    other, _ = generate_face_identity(300, 1 / 6, 20, 48, seed=4)
    assert other.tobytes() != pixels.tobytes()


def test_emotions_are_balanced_and_images_vary():
    pixels, labels = generate_emotions(90, 10, 32, seed=0)
    assert np.bincount(labels).tolist() == [30, 30, 30]
    flat = pixels.reshape(len(pixels), -1).astype(float)
    assert flat.std(axis=1).min() > 5          # no blank images
    assert len({p.tobytes() for p in pixels}) == 90  # no two images identical
