"""Experiment: Multi-CryoGAN with a discrete latent on the ladder's mixture rung.

python bench/discrete_classes.py TREE OUT MINUTES SEED [name=value ...]  (env FIXED_P0=0.3: class 0
drawn with that fixed probability instead of learned proportions)

Two class volumes (template + basis_c) drawn uniformly (class floor(2 Phi(z_0))) and learned class
proportions p = softmax(logits): every simulated image's critic score is weighted by p_c / (1/2)
(importance weights: the expected loss over classes, differentiable in the logits). Writes 16
samples drawn with the learned p and scores them on the ladder's mixture rung."""
import ast, json, os, sys, time
tree, out, minutes, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, tree); sys.path.insert(0, os.path.join(tree, "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
from tfcryogan.training.config import TrainConfig
from tfcryogan.training import loop, cryogan, losses
from tfcryogan.models.generator import ConformationGenerator
from tfcryogan.simulator import replica_slice
from tfcryogan.physics import projector
from tfcryogan import io
import multi

extra = {}
for kv in sys.argv[5:]:
    k, v = kv.split("=", 1)
    try: extra[k] = ast.literal_eval(v)
    except Exception: extra[k] = v
K = 2
LOGIT_LR_SCALE = float(os.environ.get("LOGIT_LR_SCALE", "1"))

FIXED_P0 = float(os.environ.get("FIXED_P0", "0"))

def classes_of(z):
    u = 0.5 * (1.0 + tf.math.erf(z[:, 0] / np.sqrt(2.0)))
    if FIXED_P0:
        return tf.cast(u >= FIXED_P0, tf.int32)
    return tf.minimum(tf.cast(tf.floor(u * K), tf.int32), K - 1)

class Classes(ConformationGenerator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.class_logits = self.add_weight(shape=(K,), initializer="zeros", name="class_logits")
    def coefficients(self, z):
        return tf.concat([tf.ones([tf.shape(z)[0], 1]), tf.one_hot(classes_of(z), K)], axis=1)
    def weights_of(self, z):
        if FIXED_P0:
            return tf.ones([tf.shape(z)[0]])
        p = tf.nn.softmax(self.class_logits * LOGIT_LR_SCALE)
        return K * tf.gather(p, classes_of(z))

def make(settings, name):
    return Classes(settings["box"], settings["latent_dim"], settings["symmetry"],
                   settings["mask_radius"], name=name)

def z_of(seed, g, d):
    seeds = tf.random.experimental.stateless_split(seed, 5)
    return replica_slice(tf.random.stateless_normal([g, d], seeds[0]), g)

def train_step(self, data):
    g = self.global_batch
    d = self.generator.latent_dim
    seeds = tf.random.experimental.stateless_split(
        tf.stack([tf.constant(self.config.seed, tf.int64), self.step.value]), self.n_critic + 1)
    patches = data.get("patches")
    def patches_at(i):
        return None if patches is None else patches[:, i]
    spectrum = tf.stop_gradient(projector.volume_spectrum(self.generator.basis_volumes()))
    for i in range(self.n_critic):
        draw, mix = tf.unstack(tf.random.experimental.stateless_split(seeds[i], 2))
        real = self.preprocess(data["real"][:, i])
        fake = tf.stop_gradient(self.preprocess(
            self.simulate(data["ctf"][:, i], draw, patches_at(i), spectrum=spectrum)))
        w = tf.stop_gradient(self.generator.weights_of(z_of(draw, g, d)))
        epsilon = replica_slice(tf.random.stateless_uniform([g], mix), g)
        critic = self.critic_scores
        with tf.GradientTape() as tape:
            real_scores = critic(real)
            fake_scores = critic(fake)
            w_loss = losses.critic_loss(real_scores, w * fake_scores, g)
            gp = losses.gradient_penalty(critic, real, fake, epsilon, g)
            d_loss = w_loss + self.config.gp_weight * gp
            scaled = self.d_optimizer.scale_loss(d_loss)
        grads = tape.gradient(scaled, self.critic.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.critic.trainable_variables))
    variables = self.generator_variables()
    k = self.generator_batches
    ctf = tf.reshape(data["ctf"][:, self.n_critic + 1 - k:], [-1, 9])
    gen_patches = None
    if patches is not None:
        gen_patches = tf.reshape(patches[:, self.n_critic + 1 - k:], [-1, self.box, self.box])
    with tf.GradientTape() as tape:
        fake = self.preprocess(
            self.simulate(ctf, seeds[self.n_critic], gen_patches, global_batch=g * k))
        w = self.generator.weights_of(z_of(seeds[self.n_critic], g * k, d))
        g_loss = losses.generator_loss(w * self.critic_scores(fake), g * k)
        z = tf.random.stateless_normal([4, d], seeds[-1])
        g_loss += self.config.positivity_weight * self.generator.negativity(z) / float(
            tf.distribute.get_strategy().num_replicas_in_sync)
        scaled = self.g_optimizer.scale_loss(g_loss)
    grads = tape.gradient(scaled, variables)
    self.g_optimizer.apply_gradients(zip(grads, variables))
    return {"wasserstein": -w_loss, "gradient_penalty": gp, "critic_loss": d_loss,
            "generator_loss": g_loss}

cryogan.CryoGAN.train_step = train_step

work = "/tmp/bench_multi/ladder_mixture"
cfg = TrainConfig(particles=f"{work}/particles.star", output_dir=out, latent_dim=K,
                  max_minutes=minutes, max_steps=100000, seed=seed, restart=True, **extra)
cfg.validate()
loop.strategy_lib.prepare_devices(cfg.strategy, cfg.cpu_replicas)
inputs = loop.load_inputs(cfg, print)
trainer = loop.Trainer(cfg, inputs.data, log=print, make_generator=make)
t0 = time.time()
rec = trainer.run()
gen = trainer.ema_generator or trainer.generator
p = (np.array([FIXED_P0, 1 - FIXED_P0]) if FIXED_P0 else
     tf.nn.softmax(gen.class_logits * LOGIT_LR_SCALE).numpy())
p_raw = tf.nn.softmax(trainer.generator.class_logits * LOGIT_LR_SCALE).numpy()
print("learned proportions (ema, raw):", p.round(3).tolist(), p_raw.round(3).tolist())
basis = gen.basis_volumes().numpy()
rng = np.random.default_rng(seed)
cls = rng.choice(K, size=16, p=p / p.sum())
samples = os.path.join(out, "samples")
os.makedirs(samples, exist_ok=True)
for i, c in enumerate(cls):
    io.write_volume(os.path.join(samples, f"sample_{i:03d}.mrc"), basis[0] + basis[1 + c],
                    inputs.data.pixel_size)
for c in range(K):
    io.write_volume(os.path.join(out, f"class_{c}.mrc"), basis[0] + basis[1 + c], inputs.data.pixel_size)
print("sample classes", cls.tolist())
class Args: pass
a = Args(); a.dataset = "mixture"; a.pixel = 0; a.work = "/tmp/bench_multi"; a.frames = 10
a.box = 64; a.n = 20000; a.snr_db = -5.0; a.threshold_A = 0
data = multi.coverage_data(a)
res = multi.evaluate(samples, data, "learned")
print(json.dumps({"steps": rec["step"], "wall_s": round(time.time() - t0), "p": p.tolist(),
                  "extra": extra, "result": res}, default=str), flush=True)
