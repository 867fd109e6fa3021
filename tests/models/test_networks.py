import pytest
import torch

from models.asymdiffrec import AsymDiffRec, build_model
from models.base_models import BASE_MODELS
from models.config import VARIANTS, ModelConfig


@pytest.fixture(scope="module")
def batch(dataset, schema):
    return schema.encode(dataset.train.iloc[:64])


@pytest.mark.parametrize("base", sorted(BASE_MODELS))
def test_shapes_and_dtypes_through_h_g_f(schema, batch, base):
    model = build_model(schema, {"variant": "asymdiffrec", "base": base, "embed_dim": 8, "hidden": [32, 16]})
    assert isinstance(model, AsymDiffRec)
    emb = model.base.embedding(batch)
    assert emb.shape == (64, schema.n_fields, 8) and emb.dtype == torch.float32
    z = model.base.encode(emb)
    assert z.shape == (64, model.base.latent_dim) and z.dtype == torch.float32
    z0 = model.denoiser(z, batch.mask.float())
    assert z0.shape == z.shape and z0.dtype == torch.float32
    logits = model.base.head(z0)
    assert logits.shape == (64,) and logits.dtype == torch.float32
    assert torch.allclose(model(batch), logits)


def test_missing_embedding_is_used_for_masked_fields(schema, batch):
    model = build_model(schema, {"variant": "base"})
    layer = model.base.embedding
    mask = batch.mask.clone()
    mask[:, 0] = True
    emb = layer(batch, mask)
    assert torch.equal(emb[:, 0], layer.missing[0].expand(64, -1))
    observed = ~mask
    raw = layer.lookup(batch)
    assert torch.equal(emb[observed], raw[observed])


def test_masked_field_ids_do_not_matter(schema, batch):
    model = build_model(schema, {"variant": "asymdiffrec"}).eval()
    mask = batch.mask.clone()
    mask[:, :3] = True
    scrambled = batch.with_mask(mask)
    other = scrambled.index(slice(None))
    other.single = scrambled.single.clone()
    other.single[:, :3] = (other.single[:, :3] + 1) % 3
    with torch.no_grad():
        assert torch.equal(model(scrambled), model(other))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_trains_one_step(schema, batch, variant):
    model = build_model(schema, {"variant": variant, "hidden": [32, 16]})
    loss, parts = model.loss(batch, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(v) for v in parts.values())
    grads = [p.grad for p in model.base.parameters() if p.grad is not None]
    assert grads, "no gradient reached the base model"


def test_ablations_pin_their_weights(schema):
    assert build_model(schema, {"variant": "asymdiffrec_no_aux", "lambda_aux": 0.7}).cfg.lambda_aux == 0.0
    assert build_model(schema, {"variant": "asymdiffrec_no_rec"}).cfg.lambda_rec == 0.0


def test_residual_denoiser_starts_as_identity(schema, batch):
    model = build_model(schema, {"variant": "asymdiffrec", "residual": True}).eval()
    with torch.no_grad():
        assert torch.allclose(model(batch), model.base(batch))


def test_multimask_adapter_starts_as_the_base_model_and_sees_the_mask(schema, batch):
    base = build_model(schema, {"variant": "base"}, seed=2).eval()
    model = build_model(schema, {"variant": "multimask", "mask_copies": 2}, seed=2).eval()
    with torch.no_grad():
        assert torch.allclose(model(batch), base(batch))  # a(s) = 1 at initialisation
        model.adapter.net[-1].bias.fill_(1.0)
        model.adapter.net[-1].weight[0].fill_(5.0)  # field 0's weight now depends on the mask
        assert not torch.allclose(model(batch), base(batch))
        ones, observed = torch.ones(1, schema.n_fields, 4), torch.zeros(1, schema.n_fields, dtype=torch.bool)
        one_missing = observed.clone()
        one_missing[0, 1] = True
        assert not torch.allclose(model.adapter(ones, observed)[0, 0], model.adapter(ones, one_missing)[0, 0])


def test_init_depends_only_on_seed(schema, batch):
    a = build_model(schema, {"variant": "asymdiffrec"}, seed=5)
    torch.rand(10)
    b = build_model(schema, {"variant": "asymdiffrec"}, seed=5)
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k


def test_bad_config_names_the_key(schema):
    with pytest.raises(ValueError, match="lamda_rec"):
        ModelConfig.from_dict({"lamda_rec": 1.0})
    with pytest.raises(ValueError, match="variant"):
        build_model(schema, {"variant": "vae"})
    with pytest.raises(ValueError, match="base"):
        build_model(schema, {"base": "transformer"})


def test_multi_step_chain_runs(schema, batch):
    model = build_model(schema, {"variant": "asymdiffrec", "reverse_steps": 3, "residual": False, "t_schedule": "fitted"})
    loss, _ = model.loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert model(batch).shape == (64,)


@pytest.mark.parametrize("base", sorted(BASE_MODELS))
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_latent_layer_moves_the_split_not_the_network(schema, batch, base, layer):
    ref = build_model(schema, {"variant": "base", "base": base, "hidden": [32, 16], "latent_layer": -1}, seed=3).eval()
    model = build_model(schema, {"variant": "base", "base": base, "hidden": [32, 16], "latent_layer": layer}, seed=3).eval()
    z = model.base.h(batch)
    deep_part = {0: schema.n_fields * 16, 1: 32, 2: 16}[layer]
    other_part = {"dnn": 0, "dcnv2": schema.n_fields * 16, "deepfm": 16}[base]  # cross output, FM vector
    assert z.shape == (64, model.base.latent_dim) and model.base.latent_dim == deep_part + other_part
    with torch.no_grad():
        assert torch.allclose(model(batch), ref(batch))
        assert torch.allclose(model.base.head(z), ref(batch))
    with pytest.raises(ValueError, match="latent_layer"):
        ModelConfig.from_dict({"hidden": [32, 16], "latent_layer": 3})


@pytest.mark.parametrize("options", [{"serve": "ensemble"}, {"step_cond": True}, {"embed_dropout": 0.2, "latent_layer": 0}])
def test_asymdiffrec_options_train_and_serve(schema, batch, options):
    model = build_model(schema, {"variant": "asymdiffrec", "hidden": [32, 16], "residual": True, **options})
    loss, _ = model.loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    model.eval()
    with torch.no_grad():
        # g starts as the identity, so every serving mode starts equal to the base model.
        assert torch.allclose(model(batch), model.base(batch), atol=1e-6)


def test_merged_views_drop_together(schema):
    from models.asymdiffrec import drop_groups

    views = schema.views
    groups = drop_groups(schema, (views[0], views[1]))
    first = {g for g, f in zip(groups, schema.fields) if f.view in views[:2]}
    assert len(first) == 1 and len(set(groups)) == len(views) - 1
    with pytest.raises(ValueError, match="merge_views"):
        drop_groups(schema, ("no_such_view",))


def test_field_reordering_is_exact_in_values_and_gradients(schema, batch):
    """The look-up puts fields back in schema order with index_select (or not at all when already in
    order); it must give the values and gradients of the plain fancy-indexing it replaced, bit for bit."""
    from models.layers import FeatureEmbedding

    assert schema.multi_fields and not FeatureEmbedding(schema, 4).in_order  # the toy schema interleaves kinds
    torch.manual_seed(0)
    emb = FeatureEmbedding(schema, 4)
    got = emb.lookup(batch)
    got.pow(2).sum().backward()
    grad_got = emb.table.weight.grad.clone()
    emb.table.weight.grad = None
    parts = [emb.table(batch.single + emb.single_offsets)]
    present = (batch.multi > 0).unsqueeze(-1).float()
    vecs = emb.table(batch.multi + emb.multi_offsets.view(1, -1, 1)) * present
    parts.append(vecs.sum(2) / present.sum(2).clamp_min(1.0))
    want = torch.cat(parts, dim=1)[:, emb.order]
    want.pow(2).sum().backward()
    assert torch.equal(got, want) and torch.equal(grad_got, emb.table.weight.grad)
