/* Live segmentation through the C ABI, as a capture loop would run it: a
 * causal model streamed one frame at a time (then in uneven chunks) must
 * label every frame as offline segmentation of the whole video does; bad
 * calls come back as statuses with messages and leave the stream usable.
 *
 * usage: abi_stream CAUSAL_MODEL OFFLINE_MODEL FEATURES.f32 DIM FRAMES
 * FEATURES.f32 holds DIM*FRAMES little-endian floats, [dim][frames]. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncseg.h"

#include "check.h"

#define EXPECT(call, want)                                                     \
  do {                                                                         \
    SyncsegStatus got_ = (call);                                               \
    const char *msg_ = syncseg_last_error();                                   \
    CHECK(got_ == (want), "%s returned %u, expected %u (%s)", #call,           \
          (unsigned)got_, (unsigned)(want), msg_ ? msg_ : "no message");       \
    if ((want) != SYNCSEG_STATUS_OK) {                                         \
      CHECK(msg_ != NULL && strlen(msg_) > 0, "%s left no message", #call);    \
      if (msg_) printf("refused as expected: %s -> %s\n", #call, msg_);        \
    }                                                                          \
  } while (0)

/* Streams `frames` frames in pushes of `chunk` (cycling through a few sizes
 * when chunk is 0) into per-frame labels; returns the number labelled. */
static size_t stream_all(SyncsegStream *s, const float *frame_major, size_t dim,
                         size_t frames, size_t chunk, int64_t *labels, size_t lookahead) {
  static const size_t sizes[] = {1, 5, 2, 64, 3};
  SyncsegFrameLabel *out = malloc((frames + lookahead + 1) * sizeof *out);
  size_t done = 0, at = 0, i = 0;
  while (at < frames) {
    size_t n = chunk ? chunk : sizes[i++ % 5];
    if (n > frames - at) n = frames - at;
    size_t got = 0;
    if (syncseg_stream_push(s, frame_major + at * dim, n * dim, n, out, n, &got) !=
        SYNCSEG_STATUS_OK) {
      CHECK(0, "push at %zu: %s", at, syncseg_last_error());
      break;
    }
    for (size_t k = 0; k < got; k++) {
      CHECK(out[k].frame == (int64_t)done, "label %zu is for frame %lld", done,
            (long long)out[k].frame);
      labels[done++] = out[k].label;
    }
    at += n;
    CHECK(done == (at > lookahead ? at - lookahead : 0), "after %zu frames %zu labels", at, done);
  }
  size_t got = 0;
  EXPECT(syncseg_stream_finish(s, out, lookahead, &got), SYNCSEG_STATUS_OK);
  for (size_t k = 0; k < got; k++) {
    CHECK(out[k].frame == (int64_t)done, "finish: frame %lld", (long long)out[k].frame);
    CHECK(out[k].confidence > 0.0f && out[k].confidence <= 1.0f, "confidence %f",
          out[k].confidence);
    labels[done++] = out[k].label;
  }
  free(out);
  return done;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s CAUSAL_MODEL OFFLINE_MODEL FEATURES.f32 DIM FRAMES\n", argv[0]);
    return 2;
  }
  size_t dim = (size_t)strtoul(argv[4], NULL, 10);
  size_t frames = (size_t)strtoul(argv[5], NULL, 10);
  size_t len = dim * frames;
  float *features = malloc(len * sizeof(float));
  FILE *f = fopen(argv[3], "rb");
  CHECK(f && fread(features, sizeof(float), len, f) == len, "cannot read %s", argv[3]);
  if (f) fclose(f);
  float *frame_major = malloc(len * sizeof(float));
  for (size_t c = 0; c < dim; c++)
    for (size_t t = 0; t < frames; t++) frame_major[t * dim + c] = features[c * frames + t];

  SyncsegModel *model = NULL;
  EXPECT(syncseg_model_load(argv[1], &model), SYNCSEG_STATUS_OK);

  /* Offline labels, frame by frame, from the segments. */
  int64_t *want = malloc(frames * sizeof *want);
  SyncsegSegments *segs = NULL;
  EXPECT(syncseg_segment(model, features, len, dim, frames, SYNCSEG_LAYOUT_DIM_BY_TIME, &segs),
         SYNCSEG_STATUS_OK);
  size_t count = 0;
  EXPECT(syncseg_segments_count(segs, &count), SYNCSEG_STATUS_OK);
  for (size_t i = 0; i < count; i++) {
    SyncsegSegment s;
    const char *name = NULL;
    EXPECT(syncseg_segments_get(segs, i, &s, &name), SYNCSEG_STATUS_OK);
    for (int64_t t = s.start_frame; t < s.end_frame; t++) want[t] = s.label;
  }
  EXPECT(syncseg_segments_free(&segs), SYNCSEG_STATUS_OK);

  SyncsegStream *s = NULL;
  EXPECT(syncseg_stream_new(model, &s), SYNCSEG_STATUS_OK);
  size_t lookahead = 0, sdim = 0, classes = 0;
  EXPECT(syncseg_stream_info(s, &lookahead, &sdim, &classes), SYNCSEG_STATUS_OK);
  CHECK(sdim == dim && classes > 0, "stream info: dim %zu classes %zu", sdim, classes);
  printf("streaming %zu frames, look-ahead %zu\n", frames, lookahead);
  /* The stream owns its weights: the model can go. */
  EXPECT(syncseg_model_free(&model), SYNCSEG_STATUS_OK);

  /* Bad calls first: refused, and the stream is unchanged by them. */
  SyncsegFrameLabel out[8];
  size_t got = 99;
  EXPECT(syncseg_stream_push(s, frame_major, dim * 3, 3, out, 2, &got),
         SYNCSEG_STATUS_INVALID_ARGUMENT);
  CHECK(got == 0, "a refused push reported %zu labels", got);
  EXPECT(syncseg_stream_push(s, frame_major, dim * 3 - 1, 3, out, 8, &got),
         SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT(syncseg_stream_push(s, NULL, dim, 1, out, 8, &got), SYNCSEG_STATUS_NULL_POINTER);
  EXPECT(syncseg_stream_push(s, frame_major, dim, 1, out, 8, NULL), SYNCSEG_STATUS_NULL_POINTER);
  float *nan_frame = malloc(dim * sizeof(float));
  memcpy(nan_frame, frame_major, dim * sizeof(float));
  nan_frame[dim / 2] = NAN;
  EXPECT(syncseg_stream_push(s, nan_frame, dim, 1, out, 8, &got), SYNCSEG_STATUS_INVALID_ARGUMENT);
  free(nan_frame);
  EXPECT(syncseg_stream_push(NULL, frame_major, dim, 1, out, 8, &got), SYNCSEG_STATUS_NULL_POINTER);
  EXPECT(syncseg_stream_push(s, NULL, 0, 0, out, 0, &got), SYNCSEG_STATUS_OK);

  int64_t *labels = malloc((frames + 1) * sizeof *labels);
  size_t done = stream_all(s, frame_major, dim, frames, 1, labels, lookahead);
  CHECK(done == frames, "frame by frame: %zu of %zu frames labelled", done, frames);
  size_t differ = 0;
  for (size_t t = 0; t < done; t++) differ += labels[t] != want[t];
  CHECK(differ == 0, "frame by frame: %zu labels differ from offline", differ);
  EXPECT(syncseg_stream_push(s, frame_major, dim, 1, out, 8, &got), SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT(syncseg_stream_finish(s, out, 8, &got), SYNCSEG_STATUS_MODEL);
  EXPECT(syncseg_stream_free(&s), SYNCSEG_STATUS_OK);
  CHECK(s == NULL, "free did not null the handle");

  /* Uneven chunks, from a model loaded again. */
  EXPECT(syncseg_model_load(argv[1], &model), SYNCSEG_STATUS_OK);
  EXPECT(syncseg_stream_new(model, &s), SYNCSEG_STATUS_OK);
  done = stream_all(s, frame_major, dim, frames, 0, labels, lookahead);
  differ = 0;
  for (size_t t = 0; t < done; t++) differ += labels[t] != want[t];
  CHECK(done == frames && differ == 0, "chunks: %zu labelled, %zu differ", done, differ);
  SyncsegStream *stale = s;
  EXPECT(syncseg_stream_free(&s), SYNCSEG_STATUS_OK);
  EXPECT(syncseg_stream_free(&stale), SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT(syncseg_model_free(&model), SYNCSEG_STATUS_OK);

  /* An offline model cannot stream. */
  EXPECT(syncseg_model_load(argv[2], &model), SYNCSEG_STATUS_OK);
  EXPECT(syncseg_stream_new(model, &s), SYNCSEG_STATUS_INVALID_ARGUMENT);
  CHECK(s == NULL, "a refused stream left a handle");
  EXPECT(syncseg_model_free(&model), SYNCSEG_STATUS_OK);

  free(labels);
  free(want);
  free(frame_major);
  free(features);
  if (failures) {
    fprintf(stderr, "%d C ABI stream checks failed\n", failures);
    return 1;
  }
  printf("all C ABI stream checks passed\n");
  return 0;
}
