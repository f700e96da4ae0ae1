"""Evolutionary GAN (Wang et al., 2019): a population of generators under mutation and
selection against one discriminator.

Every step: D is updated on samples of the surviving parents (``n_critic`` times);
each parent then produces one child per mutation (a copy updated once with that
generator objective); each child is scored by

    fitness = quality + gamma * diversity,
    quality = E_z sigma(D(G(z))),  diversity = -log || grad_D loss_D(x, G(z)) ||,

and the ``parents`` fittest children survive. The best survivor is ``G`` (sampled,
averaged into the EMA, exported). ``selection: random`` keeps children drawn at random
instead, unscored: the ablation that shows what the fitness adds. A child's Adam moments
are its parent's (``adam_state: parent``) or, with ``adam_state: mutation``, the ones its
mutation has accumulated over every child it made (the authors' toy code keeps one Adam
per objective).

With ``augment`` (DiffAugment / ADA), D sees augmented batches everywhere: in its own
step, in every child's mutation loss and in the fitness (quality and diversity alike).
Within one step all children see the same augmentation (one seed for the mutation
losses, one for the fitness), so they are ranked on their samples, not on their luck.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from pydantic import BaseModel

from ganforge.config import RunConfig
from ganforge.errors import ConfigError
from ganforge.losses import d_loss, mutation_loss
from ganforge.models.progressive import set_lod
from ganforge.registry import ModelSpec
from ganforge.train.distributed import Dist
from ganforge.train.gan import GANRecipe, lr_factor
from ganforge.train.stream import DataStream

_BCE_OBJECTIVES = ("minimax", "nonsaturating")  # the D loss the fitness is defined with


def clone_tree(tree: Any) -> Any:
    """A deep copy of a state dict whose tensors share no storage with the original."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: clone_tree(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(clone_tree(v) for v in tree)
    return copy.copy(tree)


def _rounded(value: float) -> float | None:
    """A fitness for JSON: None when it was not computed."""
    return None if math.isnan(value) else round(value, 6)


class EGANRecipe(GANRecipe):
    """E-GAN over any registered G/D pair (``--recipe egan``)."""

    @staticmethod
    def check_model(config: RunConfig, spec: ModelSpec) -> None:
        if config.loss not in _BCE_OBJECTIVES:
            raise ConfigError(f"The egan recipe trains D with the standard cross-entropy loss "
                              f"that its fitness is defined with; loss '{config.loss}' does not "
                              "apply. Use --set loss=nonsaturating and choose the generator "
                              "objectives with egan.mutations.")
        fit = config.egan.fitness_batch
        if fit is not None and fit > config.batch_size:
            raise ConfigError(f"egan.fitness_batch {fit} is larger than batch_size "
                              f"{config.batch_size}; lower it or raise batch_size.")
        if fit is not None and config.pack > 1 and fit % config.pack:
            raise ConfigError(f"egan.fitness_batch {fit} must be a multiple of pack "
                              f"{config.pack}.")

    def __init__(self, config: RunConfig, spec: ModelSpec, model_cfg: BaseModel,
                 device: torch.device, dist: Dist | None = None) -> None:
        super().__init__(config, spec, model_cfg, device, dist)
        self.evo = config.egan
        # survivors other than the best (which lives in G / opt_g): (G state, Adam state)
        self.others: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.survivors: list[str] = []
        self.fitness: list[float] = []
        self.candidates: list[list[Any]] = []  # [mutation, fitness] of every child
        # adam_state "mutation": each mutation's own Adam state, carried across steps
        self.mutation_adam: dict[str, dict[str, Any]] = {}
        self._step = 0

    # ---------------------------------------------------------------- population
    def _snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return clone_tree(self.G.state_dict()), clone_tree(self.opt_g.state_dict())

    def _restore(self, snap: tuple[dict[str, Any], dict[str, Any]]) -> None:
        """Make G and its Adam state those of ``snap``, with this step's settings."""
        self._load_g(snap[0])
        self._load_adam(snap[1])

    def _load_adam(self, state: dict[str, Any]) -> None:
        """G's Adam state from ``state``, with this step's learning rate and settings."""
        self.opt_g.load_state_dict(clone_tree(state))
        g = self.cfg.g_optim
        for group in self.opt_g.param_groups:
            group.update(lr=g.lr * lr_factor(self.cfg.lr_schedule, self._step, self.cfg.steps),
                         betas=g.betas, eps=g.eps, weight_decay=g.weight_decay)

    def _load_g(self, state: dict[str, Any]) -> None:
        """G's weights from ``state``, at this step's level of detail (a parent kept from
        an earlier step carries its own)."""
        self.G.load_state_dict(state)
        if self.grower is not None:
            set_lod(self.lod, self.G)

    def _parent_fakes(self, n: int, y: torch.Tensor | None,
                      parents: list[tuple[dict[str, Any], dict[str, Any]]]) -> torch.Tensor:
        """A batch of fakes with the parents' shares as equal as possible (no grad)."""
        z = self._latents(n)
        if not parents:
            with torch.no_grad(), self.amp.autocast():
                return self.g_run(z, y)
        snap = clone_tree(self.G.state_dict())
        chunks = torch.arange(n).tensor_split(len(parents) + 1)
        out = []
        with torch.no_grad(), self.amp.autocast():
            for idx, state in zip(chunks, [None, *[p[0] for p in parents]], strict=True):
                if state is not None:
                    self._load_g(state)
                out.append(self.g_run(z[idx], None if y is None else y[idx]))
        self._load_g(snap)
        return torch.cat(out)

    # ---------------------------------------------------------------- fitness
    def _shared(self, seed: int | None) -> torch.Generator | None:
        """A fresh generator for augmentations every child of a step shares (None without
        augmentation)."""
        return None if seed is None else torch.Generator().manual_seed(seed)

    def _fitness(self, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor,
                 aug_seed: int | None = None) -> tuple[float, float, float]:
        """(fitness, quality, diversity) of the child now held in G; D judges the batches
        through the augmentation drawn from ``aug_seed`` (the same for every child)."""
        buffers = {k: v.clone() for k, v in self.D.named_buffers()}  # BatchNorm statistics
        with torch.no_grad(), self.amp.autocast():
            fake = self.g_run(z, y)
        gen = self._shared(aug_seed)
        real_in, fake_in = self._augment(self._reals(x), gen), self._augment(fake, gen)
        with self.amp.autocast():
            real_logits = self.D(real_in, y).float()
            fake_logits = self.D(fake_in, y).float()
        quality = torch.sigmoid(fake_logits.detach()).mean()
        loss = d_loss("nonsaturating", real_logits, fake_logits)
        params = [p for p in self.D.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum(g.float().square().sum() for g in grads))
        diversity = -torch.log(norm.clamp_min(1e-12))
        for k, v in self.D.named_buffers():
            v.copy_(buffers[k])
        values = self.dist.mean(torch.stack([quality, diversity]).detach())
        q, d = float(values[0]), float(values[1])
        return q + self.evo.gamma * d, q, d

    # ---------------------------------------------------------------- one step
    def train_step(self, step: int, stream: DataStream) -> dict[str, torch.Tensor]:
        self._step = step
        self._begin_step(step)
        self.G.train()
        self.D.train()
        for _ in range(self.cfg.n_critic):
            x, y = stream.next()
            fake = self._parent_fakes(x.shape[0], y, self.others)
            logs = self._d_step(step, x, y, fake)
        n_fit = min(self.evo.fitness_batch or x.shape[0], x.shape[0])
        z_fit = self._latents(n_fit)
        x_fit, y_fit = x[:n_fit], None if y is None else y[:n_fit]
        z = self._latents(x.shape[0])
        parents = [self._snapshot(), *self.others]
        # one child and one survivor: nothing to select, so its fitness is not computed
        choose = len(parents) * len(self.evo.mutations) > self.evo.parents
        score = choose and self.evo.selection == "fitness"
        mut_seed = fit_seed = None
        if self.augment is not None:
            mut_seed, fit_seed = self.augment.draw_seed(), self.augment.draw_seed()
        children: list[tuple[float, float, float, str, Any]] = []
        own_adam = self.evo.adam_state == "mutation"
        self.D.requires_grad_(False)
        try:
            for parent in parents:
                for mutation in self.evo.mutations:
                    adam = self.mutation_adam.get(mutation, parent[1]) if own_adam else parent[1]
                    self._restore((parent[0], adam))
                    with self.amp.autocast():
                        fake = self.g_run(z, y)
                        judged = self._augment(fake, self._shared(mut_seed))
                        loss = mutation_loss(mutation, self.d_judge(judged, y).float())
                    self._update("G", self.opt_g, self.G, loss, step, logs)
                    child = self._snapshot()
                    if own_adam:  # shared with the child's snapshot; both are only replaced
                        self.mutation_adam[mutation] = child[1]
                    fit = (float("nan"),) * 3
                    if score:
                        self.D.requires_grad_(True)
                        fit = self._fitness(x_fit, y_fit, z_fit, fit_seed)
                        self.D.requires_grad_(False)
                    children.append((*fit, mutation, child))
        finally:
            self.D.requires_grad_(True)
        self.candidates = [[c[3], _rounded(c[0])] for c in children]  # in creation order
        if choose and not score:  # random: the recipe's seeded stream, the same on every rank
            order = torch.randperm(len(children), generator=self.rng)
            kept = [children[i] for i in order[: self.evo.parents]]
        else:
            kept = sorted(children, key=lambda c: c[0], reverse=True)[: self.evo.parents]
        self._restore(kept[0][4])
        self.others = [c[4] for c in kept[1:]]
        self.survivors = [c[3] for c in kept]
        self.fitness = [c[0] for c in kept]
        best = kept[0]
        if score:
            logs |= {"fitness": torch.tensor(best[0]), "fitness_quality": torch.tensor(best[1]),
                     "fitness_diversity": torch.tensor(best[2])}
        for mutation in self.evo.mutations:  # window means = how often each mutation won
            logs[f"survivor_{mutation}"] = torch.tensor(float(best[3] == mutation))
        self.dist.average_buffers(self.G, self.D)
        self.ema.update(self.G, step)
        return {k: v.detach() for k, v in (logs | self._growth_logs()).items()}

    def step_record(self) -> dict[str, Any]:
        """The surviving mutations (best first), their fitness and every child's, for
        steps.jsonl."""
        return {"survivors": list(self.survivors),
                "fitness": [_rounded(f) for f in self.fitness],
                "children": self.candidates}

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(),
                "egan_others": [{"G": g, "opt_g": o} for g, o in self.others],
                "egan_survivors": list(self.survivors),
                "egan_mutation_adam": clone_tree(self.mutation_adam)}  # unshared tensors

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.others = [(clone_tree(p["G"]), clone_tree(p["opt_g"]))
                       for p in state.get("egan_others", [])]
        self.survivors = list(state.get("egan_survivors", []))
        self.mutation_adam = {k: clone_tree(v)
                              for k, v in state.get("egan_mutation_adam", {}).items()}
