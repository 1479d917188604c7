"""Turn the run's screenshots into one animated GIF, one frame at a time.

The look of a frame is decided here once, for both places that make one: the frame store
(frames.py) shrinks each screenshot with ``compact_frame`` as it is taken, and ``render_gif``
gives any frame that is not compact yet the same treatment. A compact frame is at most
``max_width`` wide and uses palette entries 0..FRAME_COLOURS-1 only, which leaves the last two
entries of the GIF frame's 256-colour palette to the progress bar: drawing the bar is then a
paste and a rectangle, with no second quantisation.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

MAX_FRAMES = 200  # ~ 2 per step at the 100-step limit; beyond it frames are sampled evenly
PROGRESS_BAR_HEIGHT = 6
PROGRESS_COLOUR = (37, 99, 235)
PROGRESS_TRACK = (226, 232, 240)
PLACEHOLDER_SIZE = (480, 270)
FRAME_COLOURS = 254  # a screenshot's palette; entries 254 and 255 are the progress bar's
BAR_INDEX, TRACK_INDEX = FRAME_COLOURS, FRAME_COLOURS + 1
MIN_WIDTH = 16


def _sample(frames: list[bytes], limit: int) -> list[bytes]:
    if len(frames) <= limit:
        return frames
    # Evenly spaced, always keeping the first and the last screenshot.
    step = (len(frames) - 1) / (limit - 1)
    return [frames[round(i * step)] for i in range(limit)]


def _fitted_size(size: tuple[int, int], max_width: int) -> tuple[int, int]:
    width, height = size
    if width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


def _is_compact(image, max_width: int) -> bool:
    """A palette image that already has the GIF's width and leaves the progress bar's entries free."""
    return image.mode == "P" and image.width <= max_width and image.getextrema()[1] < FRAME_COLOURS


def compact_frame(image, max_width: int):
    """``image`` (a Pillow image) as a GIF frame before its progress bar: scaled down to ``max_width``
    (never up), LANCZOS, then FRAME_COLOURS colours (fast octree, no dithering: dithering makes
    text noisy and the GIF bigger). Returns a "P" image; one that is compact already is returned as is."""
    from PIL import Image

    if _is_compact(image, max_width):
        return image
    rgb = image.convert("RGB")
    if rgb.width > max_width:
        rgb = rgb.resize(_fitted_size(rgb.size, max_width), Image.Resampling.LANCZOS)
    return rgb.quantize(colors=FRAME_COLOURS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def open_frame(data: bytes, max_width: int):
    """Decode a screenshot (PNG or JPEG bytes) straight into a compact frame.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale when that is still at least ``max_width`` wide
    (Pillow's ``draft``: the DCT does the shrinking), so a 1920x1080 screenshot never exists
    as a full-size bitmap; a PNG cannot do that and is decoded whole, then shrunk."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.draft("RGB", _fitted_size(image.size, max_width))
    image.load()
    return compact_frame(image, max_width)


def _with_progress_bar(frame, position: int, total: int):
    from PIL import Image, ImageDraw

    canvas = Image.new("P", (frame.width, frame.height + PROGRESS_BAR_HEIGHT), TRACK_INDEX)
    palette = (frame.getpalette() or [])[: FRAME_COLOURS * 3]
    palette += [0] * (FRAME_COLOURS * 3 - len(palette))
    canvas.putpalette(palette + [*PROGRESS_COLOUR, *PROGRESS_TRACK])
    canvas.paste(frame, (0, 0))  # P onto P: the indices are copied as they are
    filled = max(1, round(frame.width * position / total))
    ImageDraw.Draw(canvas).rectangle(
        (0, frame.height, filled - 1, frame.height + PROGRESS_BAR_HEIGHT - 1), fill=BAR_INDEX
    )
    return canvas


def _placeholder():
    from PIL import Image, ImageDraw

    placeholder = Image.new("RGB", PLACEHOLDER_SIZE, (248, 250, 252))
    ImageDraw.Draw(placeholder).text((16, 16), "No screenshots: the browser did not start.", fill=(71, 85, 105))
    return placeholder


def _gif_frames(frames: list[bytes], max_width: int) -> Iterator:
    """The GIF's frames, progress bar drawn, decoded one at a time (each is dropped once written)."""
    total = len(frames) or 1
    if not frames:
        yield _with_progress_bar(compact_frame(_placeholder(), max_width), 1, total)
        return
    for position, data in enumerate(frames, start=1):
        yield _with_progress_bar(open_frame(data, max_width), position, total)


def render_gif(frames: list[bytes], *, max_width: int = 800, frame_ms: int = 1000) -> bytes:
    """An animated GIF with one frame per screenshot (PNG or JPEG bytes), looping.

    Each frame is scaled down to ``max_width`` (never up), quantised to a 256-colour palette,
    and gets a thin progress bar at the bottom, which also keeps two identical screenshots from
    being merged into one frame. More than MAX_FRAMES screenshots are sampled evenly. With no
    screenshot at all (the browser never started) a one-frame placeholder is returned, so a
    failed run still has a GIF.

    Streamed: frames are decoded, encoded and dropped one by one (Pillow's own ``save_all``
    would keep every frame until the end), so besides the GIF being written only two frames are
    in memory: the one being written and the one before it, to write only the part that changed.
    Every frame gets its own colour table; the canvas is the first frame's size.
    """
    from PIL import GifImagePlugin

    if max_width < MIN_WIDTH:
        raise ValueError(f"max_width must be at least {MIN_WIDTH} pixels")
    duration = max(20, int(frame_ms))
    buffer = io.BytesIO()
    previous = None
    for frame in _gif_frames(_sample(list(frames), MAX_FRAMES), max_width):
        if previous is None:
            header, _palette = GifImagePlugin.getheader(frame, info={"loop": 0, "duration": duration})
            buffer.writelines(header)
            box = (0, 0, *frame.size)
        else:
            if frame.size != previous.size:  # a run's screenshots share a size; keep the GIF valid if not
                frame = frame.crop((0, 0, *previous.size))
            box = _changed_box(previous, frame)
        # Disposal 1 leaves the previous frame in place, so only the part that changed is written.
        chunks = GifImagePlugin.getdata(
            frame.crop(box), offset=box[:2], duration=duration, disposal=1, include_color_table=True
        )
        buffer.writelines(chunks)
        previous = frame
    buffer.write(b";")  # the GIF trailer
    return buffer.getvalue()


def _changed_box(previous, frame) -> tuple[int, int, int, int]:
    """The box of ``frame`` that differs from ``previous``, in colours (their palettes differ).

    Never empty: the progress bar grows with every frame."""
    from PIL import ImageChops

    box = ImageChops.difference(previous.convert("RGB"), frame.convert("RGB")).getbbox()
    return box or (0, frame.height - 1, 1, frame.height)
