"""Named VOI choices a reader picks by name: the object's own windows and VOI LUTs first,
then the modality's customary windows.

CT values are the customary ones in Hounsfield units (centre/width); they are starting points
that readers adjust, which is why the object's own choices are offered first.
"""

from dataclasses import dataclass

from server.render.errors import INVALID_WINDOW, RenderError
from server.render.header import ImageInfo
from server.render.voi_lut import Voi, Window


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    voi: Voi

    @property
    def window(self) -> Window | None:
        return self.voi if isinstance(self.voi, Window) else None


CT_PRESETS: tuple[Preset, ...] = (
    Preset("brain", "CT brain", Window(40.0, 80.0, explanation="brain")),
    Preset("subdural", "CT subdural", Window(75.0, 215.0, explanation="subdural")),
    Preset("stroke", "CT stroke", Window(32.0, 8.0, explanation="stroke")),
    Preset("lung", "CT lung", Window(-600.0, 1500.0, explanation="lung")),
    Preset("mediastinum", "CT mediastinum", Window(50.0, 350.0, explanation="mediastinum")),
    Preset("bone", "CT bone", Window(400.0, 1800.0, explanation="bone")),
    Preset("liver", "CT liver", Window(60.0, 160.0, explanation="liver")),
)

MODALITY_PRESETS: dict[str, tuple[Preset, ...]] = {"CT": CT_PRESETS}


def presets_for(info: ImageInfo) -> tuple[Preset, ...]:
    """`object-N` (the object's windows), `voi-lut-N` (its VOI LUTs), then the modality's."""
    own = tuple(
        Preset(f"object-{i + 1}", window.explanation or f"Window {i + 1}", window)
        for i, window in enumerate(info.windows)
    )
    tables = tuple(
        Preset(f"voi-lut-{i + 1}", lut.explanation or f"VOI LUT {i + 1}", lut)
        for i, lut in enumerate(info.voi_luts)
    )
    return own + tables + MODALITY_PRESETS.get(info.modality, ())


def preset_voi(info: ImageInfo, name: str) -> Voi:
    for preset in presets_for(info):
        if preset.name == name:
            return preset.voi
    raise RenderError(INVALID_WINDOW, f"no window preset {name!r} for this {info.modality} image")
