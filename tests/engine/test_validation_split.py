"""`benchmark.validation`: a fixed, class-stratified share of each context's training data held out, never trained
on, and reported as validation accuracy beside the test accuracy."""

from __future__ import annotations

import pytest
import torch

from core.engine.data import Split, build_benchmark, load_split
from core.schema.config import ConfigError
from core.schema.presets import build_config
from core.training.train import Trainer


def tagged_digits() -> Split:
    """scikit-learn's digits with every image's id written into its first pixel (value id + 2, far outside the
    [0, 1] pixels), so any sample a batch holds can be named."""
    split = load_split(build_config("split-digits").benchmark)
    x_train = split.x_train.clone()
    x_train[:, 0, 0, 0] = torch.arange(len(x_train), dtype=torch.float32) + 2
    return Split(x_train, split.y_train, split.x_test, split.y_test, split.class_names)


def ids(x: torch.Tensor) -> set[int]:
    return {int(v) - 2 for v in x[:, 0, 0, 0].tolist()}


def test_the_held_out_share_is_stratified_disjoint_and_the_same_for_every_seed():
    split = tagged_digits()
    cfg = build_config("split-digits", seed=0, overrides=["benchmark.validation=0.1"]).benchmark
    first = build_benchmark(cfg, split=split)
    again = build_benchmark(build_config("split-digits", seed=7, overrides=["benchmark.validation=0.1"]).benchmark,
                            split=split)
    everything = set()
    for context, other in zip(first.contexts, again.contexts, strict=True):
        train, val = ids(context.x_train), ids(context.x_val)
        assert not train & val
        assert ids(other.x_val) == val  # fixed: the same samples whatever the run's seed
        everything |= train | val
        for label in context.y_train.unique().tolist():
            n_val = int((context.y_val == label).sum())
            n_all = n_val + int((context.y_train == label).sum())
            assert abs(n_val - 0.1 * n_all) <= 1  # every class gives its share
    assert everything == set(range(len(split.y_train)))  # nothing lost: train + held out = the training set


def test_no_training_batch_is_ever_drawn_from_held_out_samples(tmp_path):
    config = build_config("split-digits", method="ewc", scenario="domain", device="cpu",
                          overrides=["benchmark.validation=0.2", "train.iterations=40", "train.batch_size=64"])
    benchmark = build_benchmark(config.benchmark, split=tagged_digits())
    held_out = set().union(*(ids(c.x_val) for c in benchmark.contexts))
    assert len(held_out) > 250
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trainer = Trainer(config, run_dir, lambda e: None, lambda: False, benchmark)
    drawn: set[int] = set()
    loss = trainer.method.loss

    def recording_loss(batch, info):
        drawn.update(ids(batch.x))
        return loss(batch, info)

    trainer.method.loss = recording_loss
    trainer.run()
    trainer.finish("finished")
    assert len(drawn) > 500  # the batches were seen: most training samples were drawn
    assert not drawn & held_out
    record = trainer.record.to_dict()
    assert len(record["val_matrix"]) == 5 and len(record["val_matrix"][0]) == 5
    metrics = record["metrics"]
    assert 0.5 < metrics["final_avg_val_acc"] <= 1 and metrics["final_avg_acc"] > 0.5


def test_a_run_without_validation_reports_no_validation_accuracy():
    config = build_config("split-digits")
    assert config.benchmark.validation == 0
    assert all(c.x_val is None for c in build_benchmark(config.benchmark).contexts)


def test_an_out_of_range_share_names_the_field():
    with pytest.raises(ConfigError) as error:
        build_config("split-digits", overrides=["benchmark.validation=0.9"])
    assert str(error.value).startswith("--set benchmark.validation=0.9: benchmark.validation:")
