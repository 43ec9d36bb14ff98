"""Generated faces: deterministic synthetic face-identity and emotion datasets as (images uint8 NHWC, labels int64),
or as labels and a stream of images."""
from collections.abc import Iterator
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Distinct salts so the two tasks draw different faces from the same seed.
_FACE_SALT, _EMOTION_SALT = 0xFACE, 0xE307
_ANGRY, _HAPPY, _SAD = 0, 1, 2
# Face centre on the canvas, as fractions of its side: a little high to leave room for neck and shoulders.
_CX, _CY = 0.5, 0.45
_ZOOM = 1.25  # the face fills most of the frame, as in a cropped face dataset
_SKIN = ((255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 94), (161, 102, 68), (112, 72, 48))
_HAIR = ((25, 22, 20), (70, 45, 25), (120, 80, 40), (205, 165, 95), (160, 65, 30), (150, 150, 150))
_IRIS = ((60, 40, 20), (110, 75, 35), (60, 110, 170), (70, 130, 80), (110, 110, 120))
_HAIR_STYLES = ("none", "short", "long", "fringe", "bun")
# How far the cap of hair comes down the forehead, as a fraction of the face half-height.
_HAIRLINE = MappingProxyType({"short": 0.62, "long": 0.6, "fringe": 0.42, "bun": 0.7})
# Look-alikes of the target copy all but a few of these groups from it.
_FEATURE_GROUPS = (
    ("face_a", "face_b", "jaw"), ("skin",), ("eye_r", "eye_dx", "eye_y", "iris"), ("nose_len", "nose_w"),
    ("mouth_w", "mouth_y", "lip"), ("hair_style", "hair"), ("ear_r",), ("glasses",), ("beard",),
)
_LOOKALIKE_SHARE = 0.4  # fraction of the other identities that are look-alikes of the target
_LOOKALIKE_CHANGED = 3  # feature groups in which a look-alike differs from the target
_MIN_INTENSITY = 0.2  # weakest emotion drawn: close to neutral, so a few images stay ambiguous
# The nuisance ranges below (_place, _background, _occlude, _light) and the look-alike settings are calibrated with
# benchmarks/calibrate_generated.py so resnet18_scratch lands near 0.90 test accuracy on both tasks at difficulty 1.


def generate_face_identity(n_images: int, target_fraction: float, n_identities: int, img_size: int, seed: int,
                           difficulty: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Binary task: images (N, img_size, img_size, 3) uint8 RGB, labels (N,) int64 with 1 = the target person,
    0 = any other person."""
    labels, images = stream_face_identity(n_images, target_fraction, n_identities, img_size, seed, difficulty)
    return np.stack(list(images)), labels


def generate_emotions(n_images: int, n_identities: int, img_size: int, seed: int,
                      difficulty: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """3-class task: labels 0 = angry, 1 = happy, 2 = sad, balanced (counts differ by at most 1)."""
    labels, images = stream_emotions(n_images, n_identities, img_size, seed, difficulty)
    return np.stack(list(images)), labels


def stream_face_identity(n_images: int, target_fraction: float, n_identities: int, img_size: int, seed: int,
                         difficulty: float = 1.0) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """generate_face_identity's labels, and its images one at a time, drawn as the iterator is consumed."""
    _check_common(n_images, n_identities, img_size, difficulty)
    if not 0.0 < target_fraction < 1.0:
        raise ValueError(f"target_fraction must be in (0, 1), got {target_fraction}")
    rng = np.random.default_rng([seed, _FACE_SALT])
    target = _random_identity(rng)
    n_lookalikes = int(round(_LOOKALIKE_SHARE * (n_identities - 1)))
    others = [_look_alike(target, rng) if i < n_lookalikes else _random_identity(rng) for i in range(n_identities - 1)]
    n_target = min(max(1, int(round(n_images * target_fraction))), n_images - 1)
    who = np.concatenate([np.full(n_target, -1), np.arange(n_images - n_target) % (n_identities - 1)])
    who = rng.permutation(who)
    # Same person, different moods: a mild random expression is nuisance here.
    images = (_render(target if w < 0 else others[w],
                      _expression(int(rng.integers(3)), rng.uniform(0, 0.5) * difficulty), img_size, difficulty, rng)
              for w in who)
    return (who < 0).astype(np.int64), images


def stream_emotions(n_images: int, n_identities: int, img_size: int, seed: int,
                    difficulty: float = 1.0) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """generate_emotions's labels, and its images one at a time, drawn as the iterator is consumed."""
    _check_common(n_images, n_identities, img_size, difficulty)
    rng = np.random.default_rng([seed, _EMOTION_SALT])
    people = [_random_identity(rng) for _ in range(n_identities)]
    labels = rng.permutation(np.arange(n_images) % 3).astype(np.int64)
    who = rng.integers(0, n_identities, n_images)
    images = (_render(people[w], _expression(e, rng.uniform(_MIN_INTENSITY, 1.0)), img_size, difficulty, rng)
              for w, e in zip(who, labels))
    return labels, images


def _check_common(n_images: int, n_identities: int, img_size: int, difficulty: float) -> None:
    if n_images < 2 or n_identities < 2:
        raise ValueError(f"need n_images >= 2 and n_identities >= 2, got {n_images} and {n_identities}")
    if not 16 <= img_size <= 512:
        raise ValueError(f"img_size must be in 16..512 pixels, got {img_size}")
    if difficulty < 0:
        raise ValueError(f"difficulty must be >= 0 (0 = no nuisance variation), got {difficulty}")


def _random_identity(rng: np.random.Generator) -> dict:
    """Feature sizes are in canvas-side units, positions relative to the face centre."""
    u = rng.uniform
    glasses = (rng.choice(["round", "square"]), _pick(rng, _HAIR)) if rng.random() < 0.25 else None
    return {
        "face_a": u(0.19, 0.25), "face_b": u(0.25, 0.31), "jaw": u(0.0, 0.4),
        "skin": _jitter(_pick(rng, _SKIN), rng, 12),
        "eye_r": u(0.026, 0.04), "eye_dx": u(0.075, 0.1), "eye_y": u(-0.055, -0.02), "iris": _pick(rng, _IRIS),
        "nose_len": u(0.05, 0.09), "nose_w": u(0.018, 0.035),
        "mouth_w": u(0.06, 0.095), "mouth_y": u(0.11, 0.15), "lip": _jitter((165, 80, 80), rng, 25),
        "hair_style": str(rng.choice(_HAIR_STYLES)), "hair": _jitter(_pick(rng, _HAIR), rng, 15),
        "ear_r": u(0.035, 0.055), "glasses": glasses, "beard": bool(rng.random() < 0.2),
    }


def _look_alike(target: dict, rng: np.random.Generator) -> dict:
    fresh = _random_identity(rng)
    changed = rng.choice(len(_FEATURE_GROUPS), _LOOKALIKE_CHANGED, replace=False)
    keys = [k for g in changed for k in _FEATURE_GROUPS[g]]
    return {k: fresh[k] if k in keys else v for k, v in target.items()}


def _pick(rng: np.random.Generator, palette: tuple) -> tuple:
    return palette[rng.integers(len(palette))]


def _jitter(colour: tuple, rng: np.random.Generator, spread: float) -> tuple:
    return tuple(int(c) for c in np.clip(np.asarray(colour) + rng.uniform(-spread, spread, 3), 0, 255))


def _expression(emotion: int, s: float) -> dict:
    """Expression offsets at intensity s in [0, 1]; s = 0 is neutral for every emotion."""
    s = min(float(s), 1.0)
    e = dict(brow_inner=0.0, brow_outer=0.0, brow_raise=0.0, eye_open=1.0, lid=0.0, cheek=0.0,
             curve=0.0, open=0.0, mouth_w=1.0)
    if emotion == _ANGRY:  # V-shaped brows, narrowed eyes, tight flat mouth
        e.update(brow_inner=0.035 * s, brow_outer=-0.01 * s, eye_open=1 - 0.45 * s, lid=-0.8 * s,
                 curve=-0.01 * s, mouth_w=1 - 0.3 * s)
    elif emotion == _HAPPY:  # smile, open when strong; raised cheeks squint the eyes
        e.update(brow_raise=0.012 * s, eye_open=1 - 0.3 * s, cheek=s, curve=0.045 * s,
                 open=0.07 * max(s - 0.4, 0.0), mouth_w=1 + 0.25 * s)
    elif emotion == _SAD:  # inner brow ends up, drooping outer eyelids, corners down
        e.update(brow_inner=-0.03 * s, brow_outer=0.012 * s, eye_open=1 - 0.2 * s, lid=0.8 * s,
                 curve=-0.04 * s, mouth_w=1 - 0.05 * s)
    return e


def _xy(R: int, x: float, y: float) -> tuple:
    return ((_CX + x) * R, (_CY + y) * R)


def _ellipse(draw: ImageDraw.ImageDraw, R: int, x: float, y: float, rx: float, ry: float, **style) -> None:
    draw.ellipse([_xy(R, x - rx, y - ry), _xy(R, x + rx, y + ry)], **style)


def _width(R: int, w: float) -> int:
    return max(1, int(round(w * R)))


def _shade(colour: tuple, f: float) -> tuple:
    return tuple(int(min(255, c * f)) for c in colour)


def _face_outline(p: dict) -> list:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    # Narrow only the lower half (sin t > 0 is below the centre) to shape the jaw.
    x = p["face_a"] * np.cos(t) * (1 - p["jaw"] * np.clip(np.sin(t), 0, None) ** 2)
    return list(zip(x, p["face_b"] * np.sin(t)))


def _draw_person(p: dict, e: dict, R: int, shirt: tuple) -> Image.Image:
    # Transparent pixels carry the skin colour so resampling does not darken the outline.
    layer = Image.new("RGBA", (R, R), p["skin"] + (0,))
    d = ImageDraw.Draw(layer)
    a, b, skin = p["face_a"], p["face_b"], p["skin"]
    _draw_hair(d, R, p, front=False)
    _ellipse(d, R, 0, b * 1.85, 0.42, 0.3, fill=shirt)
    d.rectangle([_xy(R, -a * 0.42, b * 0.5), _xy(R, a * 0.42, b * 1.4)], fill=_shade(skin, 0.9))
    for side in (-1, 1):
        _ellipse(d, R, side * a * 0.97, p["eye_y"] + 0.02, p["ear_r"] * 0.5, p["ear_r"], fill=_shade(skin, 0.93))
    outline = _face_outline(p)
    d.polygon([_xy(R, x, y) for x, y in outline], fill=skin)
    if p["beard"]:
        d.polygon([_xy(R, x, y) for x, y in outline if y > p["mouth_y"] - 0.04], fill=p["hair"])
    _draw_nose(d, R, p)
    _draw_mouth(d, R, p, e)
    _draw_eyes(d, R, p, e)
    _draw_hair(d, R, p, front=True)
    if p["glasses"]:
        _draw_glasses(d, R, p)
    return layer


def _draw_hair(d: ImageDraw.ImageDraw, R: int, p: dict, front: bool) -> None:
    style, a, b, hair = p["hair_style"], p["face_a"], p["face_b"], p["hair"]
    if style == "none":
        return
    if front:
        hl = _HAIRLINE[style]
        box = [_xy(R, -a * 1.05, -b * 1.1), _xy(R, a * 1.05, b * (1.1 - 2 * hl))]
        d.chord(box, 180, 360, fill=hair)
    elif style == "long":
        d.rounded_rectangle([_xy(R, -a * 1.2, -b * 1.1), _xy(R, a * 1.2, b * 1.2)], radius=0.12 * R, fill=hair)
    else:
        _ellipse(d, R, 0, -b * 0.12, a * 1.1, b, fill=hair)
        if style == "bun":
            _ellipse(d, R, 0, -b * 1.15, 0.07, 0.06, fill=hair)


def _draw_nose(d: ImageDraw.ImageDraw, R: int, p: dict) -> None:
    top, w = p["eye_y"] + 0.02, p["nose_w"]
    bottom = top + p["nose_len"]
    d.polygon([_xy(R, 0, top), _xy(R, -w, bottom), _xy(R, w, bottom)], fill=_shade(p["skin"], 0.88))
    for side in (-1, 1):
        _ellipse(d, R, side * w * 0.45, bottom - 0.006, w * 0.25, 0.005, fill=_shade(p["skin"], 0.55))


def _draw_mouth(d: ImageDraw.ImageDraw, R: int, p: dict, e: dict) -> None:
    w = p["mouth_w"] * e["mouth_w"]
    x = np.linspace(-w, w, 17)
    upper = p["mouth_y"] - e["curve"] * (x / w) ** 2  # curve > 0 lifts the corners: a smile
    if e["open"] > 0.002:
        lower = upper + e["open"] * (1 - (x / w) ** 2)
        pts = list(zip(x, upper)) + list(zip(x[::-1], lower[::-1]))
        d.polygon([_xy(R, *q) for q in pts], fill=(90, 25, 35), outline=p["lip"], width=_width(R, 0.008))
    else:
        d.line([_xy(R, *q) for q in zip(x, upper)], fill=p["lip"], width=_width(R, 0.016), joint="curve")


def _draw_eyes(d: ImageDraw.ImageDraw, R: int, p: dict, e: dict) -> None:
    r, y, skin = p["eye_r"], p["eye_y"], p["skin"]
    ry = r * 0.75 * e["eye_open"]
    brow = _shade(p["hair"], 0.8) if p["hair_style"] != "none" else (60, 40, 30)
    for side in (-1, 1):
        x = side * p["eye_dx"]
        _ellipse(d, R, x, y, r * 1.3, ry, fill=(245, 245, 240))
        _ellipse(d, R, x, y, r * 0.7, min(r * 0.7, ry), fill=p["iris"])
        _ellipse(d, R, x, y, r * 0.3, min(r * 0.3, ry), fill=(15, 15, 15))
        # A slanted upper lid: lid > 0 lowers the outer corner (sad), lid < 0 the inner corner (angry).
        x_in, x_out = x - side * r * 1.4, x + side * r * 1.4
        lid_in, lid_out = y - ry + max(-e["lid"], 0) * ry * 1.3, y - ry + max(e["lid"], 0) * ry * 1.3
        d.polygon([_xy(R, x_in, y - 2 * r), _xy(R, x_out, y - 2 * r), _xy(R, x_out, lid_out), _xy(R, x_in, lid_in)],
                  fill=skin)
        d.line([_xy(R, x_in, lid_in), _xy(R, x_out, lid_out)], fill=_shade(skin, 0.45), width=_width(R, 0.006))
        if e["cheek"] > 0:  # raised cheeks push the lower lid up and flush
            _ellipse(d, R, x, y + ry + r * (1.1 - 0.5 * e["cheek"]), r * 1.5, r, fill=skin)
            blush = tuple(int(c + (t - c) * 0.35 * e["cheek"]) for c, t in zip(skin, (230, 90, 90)))
            _ellipse(d, R, x * 1.25, y + 0.075, r * 1.1, r * 0.8, fill=blush)
        base = y - r * 1.9 - e["brow_raise"]
        inner, outer = (x - side * r * 1.1, base + e["brow_inner"]), (x + side * r * 1.5, base + e["brow_outer"])
        d.line([_xy(R, *inner), _xy(R, *outer)], fill=brow, width=_width(R, 0.018))


def _draw_glasses(d: ImageDraw.ImageDraw, R: int, p: dict) -> None:
    style, colour = p["glasses"]
    r, y, w = p["eye_r"], p["eye_y"], _width(R, 0.007)
    for side in (-1, 1):
        box = [_xy(R, side * p["eye_dx"] - r * 1.8, y - r * 1.4), _xy(R, side * p["eye_dx"] + r * 1.8, y + r * 1.4)]
        (d.ellipse if style == "round" else d.rectangle)(box, outline=colour, width=w)
    d.line([_xy(R, -p["eye_dx"] + r * 1.8, y), _xy(R, p["eye_dx"] - r * 1.8, y)], fill=colour, width=w)


def _render(p: dict, e: dict, img_size: int, difficulty: float, rng: np.random.Generator) -> np.ndarray:
    R = 2 * img_size  # drawn at twice the size: downsampling anti-aliases every edge
    person = _place(_draw_person(p, e, R, tuple(int(c) for c in rng.integers(0, 256, 3))), rng, difficulty)
    canvas = Image.fromarray(_background(rng, R))
    canvas.paste(person, (0, 0), person)
    _occlude(ImageDraw.Draw(canvas), R, rng, difficulty)
    if rng.random() < 0.15 * difficulty:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.15, 0.75) * difficulty))
    small = np.asarray(canvas.resize((img_size, img_size), Image.Resampling.LANCZOS), dtype=np.float64)
    return _light(small, rng, difficulty)


def _place(layer: Image.Image, rng: np.random.Generator, difficulty: float) -> Image.Image:
    """Random shift, in-plane rotation and scale about the canvas centre."""
    R = layer.size[0]
    angle = np.deg2rad(rng.uniform(-6, 6) * difficulty)
    scale = _ZOOM * (1 + rng.uniform(-0.05, 0.05) * difficulty)
    tx, ty = rng.uniform(-0.03, 0.03, 2) * difficulty * R
    c, s, m = np.cos(angle) / scale, np.sin(angle) / scale, R / 2
    # PIL's affine maps output to input pixels, so this is the inverse of scale-rotate-shift.
    coeffs = (c, s, m - c * (m + tx) - s * (m + ty), -s, c, m + s * (m + tx) - c * (m + ty))
    return layer.transform(layer.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BICUBIC)


def _background(rng: np.random.Generator, R: int) -> np.ndarray:
    c1, c2 = rng.uniform(0, 255, (2, 3))
    kind = rng.integers(3)
    if kind == 0:
        mix = np.zeros((R, R, 1))
    elif kind == 1:
        t = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:R, 0:R] / R - 0.5
        mix = (0.5 + xx * np.cos(t) + yy * np.sin(t))[..., None]
    else:  # blotchy texture: a coarse random grid blown up smoothly
        n = int(rng.integers(3, 12))
        coarse = Image.fromarray((rng.random((n, n)) * 255).astype(np.uint8))
        mix = np.asarray(coarse.resize((R, R), Image.Resampling.BICUBIC), dtype=np.float64)[..., None] / 255
    return np.clip(c1 + (c2 - c1) * mix, 0, 255).astype(np.uint8)


def _occlude(d: ImageDraw.ImageDraw, R: int, rng: np.random.Generator, difficulty: float) -> None:
    if rng.random() >= 0.1 * difficulty:
        return
    w, h = rng.uniform(0.1, 0.25, 2) * R
    cx, cy = (_CX + rng.uniform(-0.22, 0.22)) * R, (_CY + rng.uniform(-0.25, 0.25)) * R
    shape = d.rectangle if rng.random() < 0.5 else d.ellipse
    shape([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))


def _light(img: np.ndarray, rng: np.random.Generator, difficulty: float) -> np.ndarray:
    """Brightness, contrast, colour cast, a directional light gradient and sensor noise."""
    n = img.shape[0]
    t = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:n, 0:n] / n - 0.5
    ramp = 1 + rng.uniform(0, 0.3) * difficulty * (xx * np.cos(t) + yy * np.sin(t))
    gain = (1 + rng.uniform(-0.125, 0.125) * difficulty) * (1 + rng.uniform(-0.04, 0.04, 3) * difficulty)
    contrast = 1 + rng.uniform(-0.15, 0.1) * difficulty
    mean = img.mean()
    img = ((img - mean) * contrast + mean) * gain * ramp[..., None]
    img = img + rng.normal(0, rng.uniform(0, 3) * difficulty, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
