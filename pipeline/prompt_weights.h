/* prompt_weights.h — prompts as A1111 users write them: its emphasis syntax,
 * its 75-token chunks for long prompts, and the text-encoder output it
 * builds from them (modules/prompt_parser.py parse_prompt_attention,
 * sd_hijack_clip.py tokenize_line / process_tokens, sd_emphasis.py
 * "Original").
 *
 * Emphasis: "(text)" multiplies its weight by 1.1, "[text]" by 1/1.1,
 * "(text:W)" by W; brackets nest (weights multiply, in double, innermost
 * first), unclosed ones apply to the end of the prompt, stray closers are
 * text; "\(", "\)", "\[", "\]", "\\" are the literal characters; "BREAK"
 * (a whole word) ends the current chunk. Adjacent pieces of equal weight
 * merge.
 *
 * Chunks: each piece's text is BPE-tokenized on its own; tokens fill chunks
 * of 75, each token carrying its piece's weight. When a chunk is full and
 * the token that does not fit is not a comma, the tokens after the chunk's
 * last comma move to the next chunk if that comma is within the last 20
 * (A1111's comma_padding_backtrack). Each chunk becomes 77 ids: start, its
 * tokens, end-token padding, end (weight 1 on start/end/padding); a model
 * whose pad id differs from the end id gets pad ids after the first end.
 *
 * Encoding: each 77-token chunk goes through the text encoder alone
 * (z [77, D]); then z *= weight per token and z *= mean(z_before) /
 * mean(z_after) over the chunk (A1111 restores the mean so that emphasis
 * changes the direction, not the scale); the chunks are concatenated:
 * context [n_chunks * 77, D]. A prompt without emphasis gives exactly the
 * encoder's own output. */
#ifndef CS_PROMPT_WEIGHTS_H
#define CS_PROMPT_WEIGHTS_H

#include <stdint.h>

#include "core/err.h"
#include "pipeline/tokenizer.h"

#define CS_PROMPT_CHUNK 75 /* tokens per chunk, without start and end */
#define CS_PROMPT_COMMA_BACKTRACK 20

typedef struct {
    char *text;
    double weight; /* -1 with text "BREAK": a chunk break */
} cs_prompt_piece;

/* Splits text into weighted pieces (at least one). Error: a "(...:W)" whose
 * W is not a number ("prompt: (...:1.2.3): bad weight"). */
int cs_prompt_parse(const char *text, cs_prompt_piece **out, int *n, cs_err *err);
void cs_prompt_pieces_free(cs_prompt_piece *p, int n);

typedef struct {
    int n_chunks;      /* >= 1 */
    int32_t *ids;      /* [n_chunks * 77] */
    float *weights;    /* [n_chunks * 77] */
    int n_tokens;      /* BPE tokens of the prompt (A1111's "token count") */
} cs_prompt_chunks;

/* pad_id: what follows the first end token of a chunk (SD 1.x: CLIP_END_ID). */
int cs_prompt_chunk(const clip_tokenizer *t, const char *text, int32_t pad_id, cs_prompt_chunks *out,
                    cs_err *err);
void cs_prompt_chunks_free(cs_prompt_chunks *c);

/* The text encoder for one chunk: ids[77] -> z[77 * dim]. */
typedef int (*cs_chunk_encoder)(void *ctx, const int32_t *ids, float *z, cs_err *err);

/* Applies A1111's emphasis to one chunk's z [77, dim] in place. */
void cs_prompt_emphasis(float *z, const float *weights, int dim);

/* The conditioning context of a prompt: *out [n_chunks * 77 * dim]
 * (malloc'd, caller frees), *n_chunks set. */
int cs_prompt_encode(const clip_tokenizer *t, const char *text, int32_t pad_id, int dim, cs_chunk_encoder enc,
                     void *ctx, float **out, int *n_chunks, cs_err *err);

#endif
