/* resnet.h — the SSCD copy-detection descriptor (Pizzi et al., CVPR 2022):
 * torchvision ResNet-50 trunk -> GeM pooling (p = 3) -> optional Linear
 * projection (torchvision's fc, 2048 -> 512 in SSCD) -> L2 normalisation.
 *
 * Weights: a safetensors file with the keys of
 * torchvision.models.resnet50(num_classes=D).state_dict() (F32/F16/BF16),
 * bare or with SSCD's "backbone." prefix (scripts/convert_sscd.py writes one
 * from SSCD's published TorchScript files). Every shape is checked at load,
 * every value must be finite, and batch norm (eps 1e-5, running statistics)
 * is folded into the convolutions. Without fc.weight the descriptor is the
 * 2048-d GeM vector. Reference: ../shared/refs/resnet50/README.md.
 *
 * Descriptors are L2-normalised with max(norm, 1e-12) as in torch; a constant
 * image gives a valid (non-zero) descriptor because fc has a bias and GeM
 * clamps at 1e-6, so no special case arises inside the model; a descriptor
 * that is all zero (only possible with a bias-free projection) stays zero. */
#ifndef CS_RESNET_H
#define CS_RESNET_H

#include <stdint.h>

#include "core/err.h"
#include "core/image.h"
#include "core/nn.h"

/* Preprocessing, as named settings (cs_resnet_preproc_named). */
typedef struct {
    const char *name;
    int short_edge;      /* > 0: Resize(short_edge): short edge -> this, long edge truncated */
    int resize_w, resize_h; /* > 0 (and short_edge = 0): Resize([h, w]) as given */
    int crop;            /* > 0: CenterCrop(crop) after the resize */
    float mean[3], std[3];
} cs_resnet_preproc;

/* "small_288" (SSCD README default: Resize(288), ImageNet mean/std),
 * "skew_320" (Resize([320, 320])), "skew_288" (Resize([288, 288]), SSCD's
 * DISC evaluation default), "center_224" (Resize(256) + CenterCrop(224),
 * torchvision's ImageNet evaluation). NULL for an unknown name. */
const cs_resnet_preproc *cs_resnet_preproc_named(const char *name);
#define CS_RESNET_PREPROC_DEFAULT "small_288"

/* Output size of the resize step for a w x h image. */
void cs_resnet_preproc_size(const cs_resnet_preproc *pp, int w, int h, int *ow, int *oh);

/* Pillow's BILINEAR resize of 8-bit RGB (its fixed-point separable algorithm,
 * antialiased when shrinking; bit-exact with Pillow 9.4). dst is allocated. */
int cs_resize_pil_bilinear(cs_image *dst, const cs_image *src, int w, int h, cs_err *err);

/* Image -> model input [3, oh, ow] (resize, crop, /255, (x - mean) / std).
 * *out is malloc'd (caller frees). */
int cs_resnet_preprocess(const cs_resnet_preproc *pp, const cs_image *img, float **out, int *ow,
                         int *oh, cs_err *err);

typedef struct {
    float *w;      /* [cout, cin, kh, kw], batch norm folded in */
    float *b;      /* [cout] */
    float *wino;   /* 3x3 stride-1 convs: w transformed for F(2x2, 3x3)
                    * (index/winograd.h), [16][cout][cin]; else NULL */
    nn_conv2d_p p;
} cs_rn_conv;

typedef struct {
    cs_rn_conv conv1, conv2, conv3, downsample; /* downsample.p.cout = 0 when absent */
} cs_rn_block;

typedef struct {
    cs_rn_conv conv1;          /* stem 7x7/2 */
    cs_rn_block blocks[16];    /* layer1.0-2, layer2.0-3, layer3.0-5, layer4.0-2 */
    float *fc_w, *fc_b;        /* [dim, 2048], [dim]; NULL: no projection */
    int dim;                   /* descriptor size: fc rows, or 2048 */
    float gem_p;               /* 3 */
    float *params;             /* the one allocation w, b, fc_w, fc_b point into */
    float *wino_params;        /* the one allocation the convs' wino point into */
    float *work;               /* activations of the last forward, kept for the next */
    size_t work_n;             /* floats in work */
} cs_resnet;

/* Loads and validates weights. Errors name file and tensor:
 * "<file>: layer2.0.conv2.weight: shape [..] expected [..]", "<file>: bn1.running_var:
 * non-finite value", "<file>: not a torchvision ResNet-50 (no conv1.weight)". */
int cs_resnet_load(cs_resnet *m, const char *path, cs_err *err);
void cs_resnet_free(cs_resnet *m);

/* Optional copies of intermediates, for tests (NULL members are skipped):
 * stem [B,64,H/4,W/4], layer[i] after layer i+1, gem [B,2048], fc [B,dim]. */
typedef struct {
    float *stem, *layer[4], *gem, *fc;
} cs_resnet_taps;

/* in [B, 3, H, W] (preprocessed) -> out [B, dim] L2-normalised. The
 * activations stay allocated in m between calls (a fresh 100 MB allocation
 * per batch cost 3% in page faults), so one model runs one forward at a
 * time. H, W >= 32. Threads: cs_threads() of ours, each
 * running single-threaded sgemms: OpenBLAS is set to one thread for the
 * duration of the call and restored after (resnet_forward.c says why), so
 * do not run other OpenBLAS work concurrently from another thread.
 * An image's row depends on the batch it runs in: a batch of 8 and the same
 * image alone differ in the last bits (the products' shapes follow B). A
 * caller that needs the same bytes wherever an image falls (any -j, any MPI
 * rank count: index/embed.c) runs one image per call (B = 1). */
int cs_resnet_forward(cs_resnet *m, const float *in, int B, int H, int W, float *out,
                      cs_resnet_taps *taps, cs_err *err);

/* Images -> descriptors out [n][dim] (in the order of imgs): preprocess
 * each, sort them by size and run same-sized inputs together in batches of
 * up to batch (SSCD's small_288 keeps the aspect ratio, so a set of mixed
 * images has many sizes; batch 1 costs ~1.4x per image at 288 px). */
int cs_resnet_embed(cs_resnet *m, const cs_resnet_preproc *pp, const cs_image *imgs, int n,
                    int batch, float *out, cs_err *err);

#endif
