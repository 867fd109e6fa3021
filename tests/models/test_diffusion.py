import pytest
import torch

from models.diffusion import FeatureDropProcess, GaussianLatentSchedule, LatentReverseProcess

GROUPS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]


def natural_mask(n=2000, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, len(GROUPS), generator=gen) < 0.3


def test_add_noise_drops_exactly_t_more_and_never_restores():
    proc = FeatureDropProcess(GROUPS)
    gen = torch.Generator().manual_seed(1)
    mask = natural_mask()
    t = proc.sample_t(mask, gen)
    n_obs = (~mask).sum(1)
    assert ((t >= 0) & (t <= n_obs)).all()
    noisy = proc.add_noise(mask, t, gen)
    assert (noisy | mask).eq(noisy).all(), "a missing field was restored"
    assert torch.equal(noisy.sum(1) - mask.sum(1), t)


def test_uniform_t_covers_zero_to_n_observed():
    proc = FeatureDropProcess(GROUPS)
    mask = torch.zeros(20000, len(GROUPS), dtype=torch.bool)
    t = proc.sample_t(mask, torch.Generator().manual_seed(0))
    counts = torch.bincount(t, minlength=len(GROUPS) + 1).float() / len(t)
    assert len(counts) == len(GROUPS) + 1
    assert (counts - 1 / (len(GROUPS) + 1)).abs().max() < 0.02


def test_group_drops_remove_whole_views():
    proc = FeatureDropProcess(GROUPS)
    groups = torch.tensor(GROUPS)
    mask = natural_mask()
    noisy = proc.drop_groups(mask, torch.Generator().manual_seed(2))
    assert (noisy | mask).eq(noisy).all()
    new = noisy & ~mask
    for g in range(int(groups.max()) + 1):
        cols = groups == g
        touched = new[:, cols].any(1)
        assert noisy[touched][:, cols].all(), f"view {g} only partly dropped"
    assert new.any(), "no view was ever dropped"


def test_mixed_process_is_reproducible_and_monotone():
    proc = FeatureDropProcess(GROUPS, group_drop_prob=0.5)
    mask = natural_mask()
    a = proc(mask, torch.Generator().manual_seed(3))
    b = proc(mask, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a | mask).eq(a).all()


def test_fitted_schedule_follows_histogram_and_stays_in_range():
    n = len(GROUPS)
    hist = [0.0] * (n + 1)
    hist[3] = 1.0  # training samples always miss exactly three fields
    proc = FeatureDropProcess(GROUPS, group_drop_prob=0.0, t_schedule="fitted", missing_count_hist=hist, smoothing=0.0)
    mask = torch.zeros(500, n, dtype=torch.bool)
    mask[:, 0] = True
    t = proc.sample_t(mask, torch.Generator().manual_seed(0))
    assert (t == 2).all()
    mask[:, :5] = True  # already past the histogram's mass: only counts >= 5 are allowed
    proc = FeatureDropProcess(GROUPS, t_schedule="fitted", missing_count_hist=hist, smoothing=0.1)
    t = proc.sample_t(mask, torch.Generator().manual_seed(0))
    assert ((t >= 0) & (t <= n - 5)).all()


def test_fitted_schedule_needs_histogram():
    with pytest.raises(ValueError, match="missing_count_hist"):
        FeatureDropProcess(GROUPS, t_schedule="fitted")


def test_reverse_chain_calls_denoiser_with_fading_mask():
    seen = []

    def denoiser(z, s):
        seen.append(s.clone())
        return z + 1

    mask = torch.ones(2, 3, dtype=torch.bool)
    z = LatentReverseProcess(steps=4)(denoiser, torch.zeros(2, 5), mask)
    assert torch.equal(z, torch.full((2, 5), 4.0))
    assert [float(s[0, 0]) for s in seen] == [1.0, 0.75, 0.5, 0.25]


def test_gaussian_schedule_add_noise():
    sched = GaussianLatentSchedule(num_steps=10, noise_scale=1.0)
    z0, noise = torch.ones(4, 3), torch.zeros(4, 3)
    t = torch.tensor([0, 3, 6, 9])
    zt = sched.add_noise(z0, noise, t)
    assert (zt[:, 0].diff() < 0).all()  # more signal shrink at later steps
    assert sched.embed_timesteps(t, 16).shape == (4, 16)
