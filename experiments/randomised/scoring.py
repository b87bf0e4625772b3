"""Randomised defenses scored over their draws: ``jpeg:slq`` (Das et al. 2018, "SHIELD: fast,
practical defense and vaccination for deep learning using JPEG compression") and ComDefend at
sigma 1.0 (Jia et al. 2019, "ComDefend: an efficient image compression model to defend adversarial
examples"; the noise its original test code adds), on CIFAR-10 with ``cifar_resnet56``, iFGSM-10
at 4/255 through the defense and with EOT over 8 draws.

Run twice, scored on one draw and on ten (an image counts as robust only if every draw classifies
it correctly; the record keeps the majority-vote and single-draw accuracies beside it):

    python -m robustjax.eval --config experiments/randomised/scoring.py --n 200 --draws 1 \
        --out experiments/randomised/draws1
    python -m robustjax.eval --config experiments/randomised/scoring.py --n 200 --draws 10 \
        --out experiments/randomised/draws10
"""

from experiments.common import cifar10_jpeg


def get_config():
    return cifar10_jpeg(name="randomised_scoring", defenses=["jpeg:slq", "comdefend:sigma=1.0"], attacks=["ifgsm"],
                        eps=[0.0, 4 / 255], threats=["through", "eot"], eot_samples=8,
                        out="results/randomised")
