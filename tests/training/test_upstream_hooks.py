"""The private parts of transformers and TRL the trainer relies on: an upgrade that moves one fails here by name."""


def test_the_private_hooks_the_trainer_overrides_are_still_there_in_transformers_and_trl():
    """ElmSFTTrainer overrides Trainer's private `_save` and `_load_from_checkpoint` (adapter-only checkpoints) and
    `get_batch_samples` (no step past the end on a resume), and swaps TRL's private `_use_triton` (the LM head on target
    positions): an upgrade that renames or re-signs one fails here, not silently inside a training run."""
    import inspect

    import trl.trainer.utils as trl_utils
    from transformers import Trainer

    def names(function):
        return list(inspect.signature(function).parameters)

    assert names(Trainer._save) == ["self", "output_dir", "state_dict"]
    assert names(Trainer._load_from_checkpoint) == ["self", "resume_from_checkpoint", "model"]
    assert names(Trainer.get_batch_samples) == ["self", "epoch_iterator", "num_batches", "device"]
    assert names(trl_utils._use_triton) == ["device"]
    # and the trainer reaches them: its overrides are what the Trainer calls
    from modeling_elm.training.trainer import ElmSFTTrainer

    for hook in ("_save", "_load_from_checkpoint", "get_batch_samples"):
        assert getattr(ElmSFTTrainer, hook) is not getattr(Trainer, hook)
        assert names(getattr(ElmSFTTrainer, hook)) == names(getattr(Trainer, hook))
