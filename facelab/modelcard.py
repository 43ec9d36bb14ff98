"""The model card: the .json a run's training writes beside each model's weights, read by evaluate, predict and
`facelab evaluate`. Settings (what the model was trained with) are kept apart from results (what training
produced): {"format": 2, "settings": ModelSettings, "results": ModelResults}, so no key of one can shadow a key of
the other. One writer (facelab.training.experiment.save_outputs), one reader (read_card).

results.temperature: the one T that predict and evaluate divide the logits by (train.calibrate; 1.0 for none);
results.val_ece: the validation ECE before and after it."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from facelab import paths
from facelab.errors import ModelFileError
from facelab.files import read_json

FORMAT = 2
STAND_IN = "not ImageNet weights: these numbers do not measure pretraining"  # said of a WeightsProvenance not verified


class Record(BaseModel):
    """A file's typed block: its fields in the class statement, nothing else accepted, read-only once built."""
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalisation(Record):
    """The per-channel mean and std the model's inputs were normalised with."""
    mean: list[float]
    std: list[float]


class WeightsProvenance(Record):
    """Where the starting weights came from (facelab.models.weights_provenance); verified is None for a model
    trained from random initialisation, False for a file that is not torchvision's ImageNet download."""
    weights: str
    file: str | None
    sha256: str | None
    verified: bool | None


class Health(Record):
    """The gradient-health verdict of a training run (facelab.training.health.health_verdict)."""
    min_grad_norm: float | None
    max_grad_norm: float | None
    vanishing_gradients: bool
    exploding_gradients: bool
    frozen_layers: list[str]


class Scores(Record):
    """One split's scores in eval mode (facelab.evaluation.scores.split_scores)."""
    acc: float
    loss: float
    macro_f1: float


class WandbRun(Record):
    """Where a training's W&B run is: its mode, id, URL (online) and local folder (wandb/<run folder>)."""
    mode: str
    id: str
    url: str | None
    folder: str


class ValidationEce(Record):
    """The validation ECE before and after the temperature, and its number of bins."""
    before: float
    after: float
    bins: int


class DataSplit(Record):
    """The run's split of the prepared images, drawn by its seed (facelab.data.batches.prepared_split): the shares
    asked for (data.<task>.split) and the images each split got, per class."""
    fractions: dict[str, float]
    counts: dict[str, dict[str, int]]
    # data.<task>.label_issues of the audit whose record the run read (None: no audit record, nothing left out), and
    # the prepared rows it left out of train and val (facelab.data.label_drop): evaluate draws the same split again
    label_issues: str | None = None
    left_out: list[int] = []


class ModelSettings(Record):
    """Everything needed to rebuild and use the model, and nothing it produced. recipe and train are the
    resolved params blocks (models.<recipe>, train) as params.yaml spells them: facelab.params.parse_recipe reads
    recipe back into a Recipe. seed: the run's (params: seeds), which also drew split; evaluate splits the prepared
    data again with both."""
    task: str
    recipe_name: str
    seed: int
    split: DataSplit
    classes: list[str]
    img_size: int
    faces: str
    # a photo in which faces (detect, align) finds no face: skipped, or its centre square used (data.<task>.
    # faces_fallback); predict and evaluate do the same. Cards from before it was recorded: skip, what was done
    faces_fallback: str = "skip"
    min_side: int
    normalisation: Normalisation
    recipe: dict[str, Any]
    train: dict[str, Any]
    weights: WeightsProvenance

    @property
    def tta_flip(self) -> bool:
        """Whether the model is scored with test-time flip averaging (train.tta_flip when it was trained)."""
        return bool(self.train["tta_flip"])

    @property
    def select_by(self) -> str:
        """Which epoch's weights were kept (train.select_by when it was trained)."""
        return str(self.train["select_by"])

    @property
    def arch(self) -> str:
        return str(self.recipe["arch"])


class Compute(Record):
    """Where a training ran (facelab.accel.machine): seeded runs repeat bit-for-bit only where these are equal."""
    device: str      # cpu, or the GPU's name
    processor: str   # the CPU's model name
    kernels: str     # the instruction set of torch's CPU kernels (torch.backends.cpu.get_cpu_capability())
    threads: int     # train.threads
    torch: str

    def text(self) -> str:
        where = "CPU" if self.device == "cpu" else self.device
        return f"{where}, {self.processor} ({self.kernels} kernels, {self.threads} threads), torch {self.torch}"


class ModelResults(Record):
    """What training produced: the kept epoch's train and val scores, epochs run, the kept epoch, time and speed,
    gradient health, the augmentation applied, the W&B run (None when W&B was disabled), the calibration and
    where it was computed."""
    train: Scores
    val: Scores
    epochs: int
    best_epoch: int
    train_seconds: float
    images_per_second: float
    health: Health
    augment_applied: dict[str, Any] | None
    wandb: WandbRun | None
    temperature: float
    val_ece: ValidationEce
    compute: Compute | None = None  # cards from before it was recorded: not known


class ModelCard(Record):
    format: Literal[2] = 2  # FORMAT
    settings: ModelSettings
    results: ModelResults

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.settings.classes)

    @property
    def title(self) -> str:
        return f"{self.settings.task}/{self.settings.recipe_name}/{paths.run(self.settings.seed)}"

    def to_json(self) -> dict:
        """The file's content (key order as the fields are declared)."""
        return self.model_dump()


def stand_in_warning(weights: WeightsProvenance) -> str:
    """What train and evaluate print for starting weights that are not torchvision's ImageNet file."""
    return f"{weights.file} is {STAND_IN}"


def read_card(path, rebuild: str) -> ModelCard:
    """The .json beside a model, in the current shape; an older or foreign shape is refused with the command that
    rebuilds it."""
    if not path.is_file():
        raise ModelFileError(f"'{path}' (the settings saved beside the model file) does not exist; rebuild both "
                             f"with {rebuild}")
    try:
        card = read_json(path)
    except (OSError, ValueError) as error:
        raise ModelFileError(f"'{path}' cannot be read as JSON ({error}); rebuild it with {rebuild}") from error
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' was written by an older facelab (no separate settings and results); "
                             f"rebuild it with {rebuild}")
    try:
        return ModelCard.model_validate(card)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise ModelFileError(f"'{path}' does not hold a model card as train writes it ({problems}); rebuild it with "
                             f"{rebuild}") from error


def rebuild_command(task: str, recipe_name: str, seed: int | None) -> str:
    """The stage that builds a run's model (dvc.yaml's matrix names it run@<task>-<recipe>-<seed>), and its file."""
    run = "<seed>" if seed is None else str(seed)
    model = paths.model(task, recipe_name, 0).with_name(f"{paths.RUN}{run}.pt").as_posix()
    return f"`dvc repro run@{task}-{recipe_name}-{run}` (or `dvc pull {model}`)"
