import dataclasses

import pytest
import torch

from facelab.accel import CPU, Accel, choose_accel
from facelab.data import prepare
from facelab.data.augment import Draws
from facelab.data.batches import Inputs, load_prepared, shuffled_batches, to_input
from facelab.errors import UserError
from facelab.params import AUGMENT_OFF
from facelab.training import loop


@pytest.fixture
def prepared(tiny_params, tmp_path):
    prepare.prepare_task("emotion", tiny_params.data["emotion"], tiny_params.data_seed, tmp_path / "emotion")
    return load_prepared(tmp_path / "emotion", tiny_params.seeds[0], tiny_params.data["emotion"].split)


def settings(tiny_params, **changes):
    return dataclasses.replace(tiny_params.train, **changes)


def test_auto_is_the_gpu_path_on_cuda_and_fp32_on_cpu(tiny_params):
    assert choose_accel(settings(tiny_params, device="auto"), cuda_available=False) == CPU
    gpu = choose_accel(settings(tiny_params, device="auto"), cuda_available=True, local_rank=1)
    assert gpu == Accel(torch.device("cuda", 1), torch.bfloat16, channels_last=True, compile=False)
    cpu_bf16 = choose_accel(settings(tiny_params, precision="bf16", compile=True), cuda_available=False)
    assert cpu_bf16 == Accel(torch.device("cpu"), torch.bfloat16, channels_last=True, compile=True)
    assert choose_accel(settings(tiny_params, device="cpu"), cuda_available=True) == CPU
    with pytest.raises(UserError, match="-S train.device=auto"):
        choose_accel(settings(tiny_params, device="cuda"), cuda_available=False)


def test_bad_device_and_precision_params_are_named(tiny_raw):
    from facelab.errors import ParamsError
    from facelab.params import parse_params
    tiny_raw["train"]["precision"] = "fp16"
    with pytest.raises(ParamsError, match=r"train.precision: 'fp16' is not one of \['auto', 'fp32', 'bf16'\]"):
        parse_params(tiny_raw)


def test_batches_are_flipped_per_image_and_laid_out_for_the_model(prepared):
    splits, _ = prepared
    index, flip = torch.tensor([3, 0, 5]), torch.tensor([True, False, True])
    expected = to_input(splits["train"].images[index])
    expected[flip] = expected[flip].flip(-1)
    accel = Accel(torch.device("cpu"), torch.bfloat16, channels_last=True, compile=False)
    batch = Inputs(splits["train"], None, 8, flips=True, accel=accel).batch(index, Draws(flip=flip))
    assert torch.equal(batch, expected)
    assert batch.is_contiguous(memory_format=torch.channels_last)


def test_an_epoch_is_drawn_at_once_as_the_same_numbers_as_batch_by_batch():
    """One host-to-device copy per epoch, not per batch, yet the order and flips of every earlier
    (and every CPU) run: a seeded permutation, each image flipped with p=1/2."""
    flips = dataclasses.replace(AUGMENT_OFF, hflip=True)
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    for index, draws in shuffled_batches(100, 32, torch.Generator().manual_seed(7), flips):
        assert draws.flip is not None  # hflip on: every batch draws its flips
        batches.append((index, draws.flip))
    assert [len(index) for index, _ in batches] == [32, 32, 32, 4]
    assert [len(flip) for _, flip in batches] == [32, 32, 32, 4]
    reference = torch.Generator().manual_seed(7)
    order = torch.randperm(100, generator=reference)
    assert torch.equal(torch.cat([index for index, _ in batches]), order)
    for start, (_, flip) in zip(range(0, 100, 32), batches):
        assert torch.equal(flip, torch.rand(len(order[start:start + 32]), generator=reference) < 0.5)
    assert 30 < int(torch.cat([flip for _, flip in batches]).sum()) < 70
    unflipped = list(shuffled_batches(100, 32, torch.Generator().manual_seed(7),
                                      dataclasses.replace(AUGMENT_OFF, hflip=False)))
    assert all(draws.flip is None and not draws.pixels for _, draws in unflipped)
    assert torch.equal(torch.cat([index for index, _ in unflipped]), order)


def test_the_gpu_path_code_on_cpu_stays_close_to_fp32(tiny_params, prepared):
    """bf16 autocast + channels_last (what CUDA runs), here on the CPU: same batches, losses within
    bf16 rounding of the fp32 run, fp32 weights out. A tiny lr keeps both runs near the same
    weights, so what differs is the arithmetic, not a chaotic trajectory from scratch. Two batches of train images
    and one of val keep bf16 (slow on a CPU without bf16 units) to seconds."""
    splits, classes = prepared
    splits = {split: dataclasses.replace(data, images=data.images[:32], labels=data.labels[:32],
                                         rows=None if data.rows is None else data.rows[:32])
              for split, data in splits.items()}
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], lr=1e-6, epochs=1)
    fp32 = loop.train_loop("e/r", recipe, tiny_params.train, tiny_params.seeds[0], splits, classes, accel=CPU)
    accel = Accel(torch.device("cpu"), torch.bfloat16, channels_last=True, compile=False)
    bf16 = loop.train_loop("e/r", recipe, tiny_params.train, tiny_params.seeds[0], splits, classes, accel=accel)
    for column in ("train/loss", "val/loss"):
        assert bf16.history[column].tolist() == pytest.approx(fp32.history[column].tolist(), rel=0.02)
    assert bf16.history["train/loss"][0] != fp32.history["train/loss"][0]  # it did run in bf16
    assert all(v.dtype in (torch.float32, torch.int64) and v.device.type == "cpu"
               for v in bf16.state_dict.values())


@pytest.mark.e2e  # compiling takes about 30 s here: the whole quick loop's budget
def test_torch_compile_gives_the_eager_results(tiny_params, prepared):
    """train.compile on the vgg head (a small graph keeps the compile to seconds). No dropout:
    compiled code draws its dropout masks from another random stream than eager code."""
    splits, classes = prepared
    recipe = dataclasses.replace(tiny_params.models["vgg16_finetune"], weights="none", dropout=0.0)
    eager = loop.train_loop("e/v", recipe, tiny_params.train, tiny_params.seeds[0], splits, classes, accel=CPU)
    compiled = loop.train_loop("e/v", recipe, tiny_params.train, tiny_params.seeds[0], splits, classes,
                         accel=dataclasses.replace(CPU, compile=True))
    for column in ("train/loss", "val/loss", "val/acc"):
        assert compiled.history[column].tolist() == pytest.approx(eager.history[column].tolist(), rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh)")
def test_cuda_path_trains_on_the_gpu_and_returns_cpu_weights(tiny_params, prepared):
    splits, classes = prepared
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], lr=1e-6, epochs=1)
    fp32 = loop.train_loop("e/r", recipe, tiny_params.train, tiny_params.seeds[0], splits, classes, accel=CPU)
    gpu = loop.train_loop("e/r", recipe, settings(tiny_params, device="cuda"), tiny_params.seeds[0], splits, classes)
    assert gpu.history["train/loss"].tolist() == pytest.approx(fp32.history["train/loss"].tolist(), rel=0.02)
    assert all(v.device.type == "cpu" and v.dtype in (torch.float32, torch.int64) for v in gpu.state_dict.values())


def test_processor_is_the_cpuinfo_model_name_else_what_the_platform_says(tmp_path):
    import platform

    from facelab.accel import processor
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n")
    assert processor(cpuinfo) == "AMD EPYC 7B13"
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # aarch64's cpuinfo names no model
    assert processor(cpuinfo) == (platform.processor() or platform.machine() or "unknown")
    assert processor(tmp_path / "absent") == (platform.processor() or platform.machine() or "unknown")
