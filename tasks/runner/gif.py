"""Turn the run's screenshots into one animated GIF."""

from __future__ import annotations

import io

MAX_FRAMES = 200  # ~ 2 per step at the 100-step limit; beyond it frames are sampled evenly
PROGRESS_BAR_HEIGHT = 6
PROGRESS_COLOUR = (37, 99, 235)
PROGRESS_TRACK = (226, 232, 240)
PLACEHOLDER_SIZE = (480, 270)


def _sample(frames: list[bytes], limit: int) -> list[bytes]:
    if len(frames) <= limit:
        return frames
    # Evenly spaced, always keeping the first and the last screenshot.
    step = (len(frames) - 1) / (limit - 1)
    return [frames[round(i * step)] for i in range(limit)]


def render_gif(frames: list[bytes], *, max_width: int = 800, frame_ms: int = 1000) -> bytes:
    """An animated GIF with one frame per screenshot (PNG bytes), looping.

    Each frame is scaled down to ``max_width`` (never up), quantised to a 256-colour palette,
    and gets a thin progress bar at the bottom, which also keeps two identical screenshots from
    being merged into one frame by the GIF encoder. More than MAX_FRAMES screenshots are sampled
    evenly. With no screenshot at all (the browser never started) a one-frame placeholder is
    returned, so a failed run still has a GIF.
    """
    from PIL import Image, ImageDraw

    if max_width < 16:
        raise ValueError("max_width must be at least 16 pixels")
    frames = _sample(list(frames), MAX_FRAMES)
    images: list[Image.Image] = []
    if not frames:
        placeholder = Image.new("RGB", PLACEHOLDER_SIZE, (248, 250, 252))
        ImageDraw.Draw(placeholder).text((16, 16), "No screenshots: the browser did not start.", fill=(71, 85, 105))
        frames_rgb = [placeholder]
    else:
        frames_rgb = []
        for data in frames:
            with Image.open(io.BytesIO(data)) as image:
                frames_rgb.append(image.convert("RGB"))

    total = len(frames_rgb)
    for position, image in enumerate(frames_rgb, start=1):
        if image.width > max_width:
            height = max(1, round(image.height * max_width / image.width))
            image = image.resize((max_width, height), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (image.width, image.height + PROGRESS_BAR_HEIGHT), PROGRESS_TRACK)
        canvas.paste(image, (0, 0))
        filled = max(1, round(image.width * position / total))
        ImageDraw.Draw(canvas).rectangle(
            (0, image.height, filled - 1, image.height + PROGRESS_BAR_HEIGHT - 1), fill=PROGRESS_COLOUR
        )
        images.append(canvas.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))

    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(20, int(frame_ms)),
        loop=0,
        disposal=1,
        optimize=False,
    )
    return buffer.getvalue()
