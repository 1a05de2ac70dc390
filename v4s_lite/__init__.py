"""v4s-lite: the Video4Spatial method, built up step by step (see notebooks/).

Each module mirrors a notebook (listed in layer order: each imports only modules above it, docs/DESIGN.md):
    utils        V4SError, devices, factories                      -
    config       clip shapes (paper and lite), TrainConfig         00
    resources    the course's files from any directory             all
    scene        procedural rooms, palette, free space             01
    camera       pinhole cameras, poses                            01
    raycast      what one ray hits: primitives, room, shading      01
    render       torch ray caster: RGB, depth, instance ids        01
    language     instructions, navigation commands                 01
    trajectories scan, approach and navigation walks               01
    world        one rendered, annotated clip (make_clip)          01
    plotting     videos, frame strips, maps, generation figures    all
    sampling     non-contiguous context chunks                     01
    video        mp4 writing and reading (decord or PyAV)          01
    data         clips on disk (mp4 + meta.json)                   01
    bbox         auxiliary box frames and the red-box detector     07
    codec        latent codecs (lite, Wan2.2 VAE), text encoders   02
    latents      the one clip encoder, a run's items, the cache   02
    budget       tokens, FLOPs, training memory                    02
    rope         non-contiguous RoPE (context_positions)           03
    attention    context reuse (context attends to context)        04
    model        context-conditioned Wan transformer               04
    scan_layouts ScanNet++ / ARKitScenes recordings as stored      -
    scans        real scans -> clip folders (v4s import-scan)      -
    checkpoints  the run folder: save, resume, load a model        05
    cfg          joint classifier-free guidance                    06
    flow         flow matching: noise, seeded batches, the loss    05
    train        the training loop, LoRA                           05
    sample       denoising with diffusers schedulers; V4SPipeline  06
    pose_math    poses as five numbers, walks of them              08
    pose_views   the pictures the pose estimator compares          08
    poses        camera poses by render-and-compare                08
    statistics   intervals, paired differences, result tables      08
    calibration  the judge's test videos (known verdicts)          08
    evaluate     the judge: walk checks, SD / IF metrics           08
    tables       the paper's tables at lite scale                  09
    full         Wan2.2-TI2V-5B: loading, speed, LoRA export       10
    exercises    the notebooks' automatic checks                   all
    cli, course  the command line, running the course              -
"""
__version__ = "0.1.0"
