"""An adaptive-suite cell for the kill test (tests/test_eval_resume_kill.py): a tracked iFGSM member,
then the stand-ins' slow looped member on the images it leaves standing."""


def get_config():
    return {"name": "suite_kill", "attacks": [{"name": "adaptive", "members": ["ifgsm@oblivious",
                                                                          "slowloop:steps=200@oblivious"]}]}
