/* Drives the syncseg C ABI as an editor plugin would: load a model, segment
 * a features buffer, read the segments; then every kind of bad input, which
 * must come back as a status code with a message, never a crash.
 *
 * usage: abi_smoke MODEL FEATURES.f32 DIM FRAMES OUT_DIR
 * FEATURES.f32 holds DIM*FRAMES little-endian floats, [dim][frames]; the
 * segments are written to OUT_DIR/markers.edl and OUT_DIR/markers.otio. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncseg.h"

#include "check.h"

/* A call that must fail with `want` and leave a message. */
#define EXPECT_STATUS(call, want)                                              \
  do {                                                                         \
    SyncsegStatus got_ = (call);                                               \
    const char *msg_ = syncseg_last_error();                                   \
    CHECK(got_ == (want), "%s returned %u, expected %u (%s)", #call,           \
          (unsigned)got_, (unsigned)(want), msg_ ? msg_ : "no message");       \
    if ((want) != SYNCSEG_STATUS_OK)                                           \
      CHECK(msg_ != NULL && strlen(msg_) > 0, "%s left no message", #call);    \
    else                                                                       \
      printf("ok: %s\n", #call);                                               \
    if ((want) != SYNCSEG_STATUS_OK && msg_)                                   \
      printf("refused as expected: %s -> %s\n", #call, msg_);                  \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s MODEL FEATURES.f32 DIM FRAMES OUT_DIR\n", argv[0]);
    return 2;
  }
  size_t dim = (size_t)strtoul(argv[3], NULL, 10);
  size_t frames = (size_t)strtoul(argv[4], NULL, 10);
  size_t len = dim * frames;
  float *features = malloc(len * sizeof(float));
  FILE *f = fopen(argv[2], "rb");
  CHECK(f && fread(features, sizeof(float), len, f) == len, "cannot read %s", argv[2]);
  if (f) fclose(f);

  CHECK(syncseg_abi_version() == SYNCSEG_ABI_VERSION, "ABI version mismatch");
  printf("syncseg %s, ABI %u\n", syncseg_version(), syncseg_abi_version());

  SyncsegModel *model = NULL;
  EXPECT_STATUS(syncseg_model_load(argv[1], &model), SYNCSEG_STATUS_OK);
  size_t model_dim = 0, classes = 0;
  EXPECT_STATUS(syncseg_model_info(model, &model_dim, &classes), SYNCSEG_STATUS_OK);
  CHECK(model_dim == dim, "model dim %zu, features %zu", model_dim, dim);

  SyncsegSegments *segs = NULL;
  EXPECT_STATUS(syncseg_segment(model, features, len, dim, frames,
                                SYNCSEG_LAYOUT_DIM_BY_TIME, &segs),
                SYNCSEG_STATUS_OK);
  size_t count = 0;
  EXPECT_STATUS(syncseg_segments_count(segs, &count), SYNCSEG_STATUS_OK);
  CHECK(count > 0, "no segments");
  int64_t expected_start = 0;
  for (size_t i = 0; i < count; i++) {
    SyncsegSegment s;
    const char *name = NULL;
    if (syncseg_segments_get(segs, i, &s, &name) != SYNCSEG_STATUS_OK) {
      CHECK(0, "get %zu: %s", i, syncseg_last_error());
      break;
    }
    CHECK(s.start_frame == expected_start, "segment %zu starts at %lld", i, (long long)s.start_frame);
    CHECK(s.end_frame > s.start_frame, "empty segment %zu", i);
    CHECK(s.label < classes && name && strlen(name) > 0, "bad label/name at %zu", i);
    CHECK(s.confidence > 0.0f && s.confidence <= 1.0f, "confidence %f", s.confidence);
    printf("segment %zu: [%lld, %lld) %s %.3f\n", i, (long long)s.start_frame,
           (long long)s.end_frame, name, s.confidence);
    expected_start = s.end_frame;
  }
  CHECK(expected_start == (int64_t)frames, "segments cover %lld of %zu frames",
        (long long)expected_start, frames);

  /* The same features [frames][dim] give the same segments. */
  float *time_major = malloc(len * sizeof(float));
  for (size_t c = 0; c < dim; c++)
    for (size_t t = 0; t < frames; t++) time_major[t * dim + c] = features[c * frames + t];
  SyncsegSegments *segs_t = NULL;
  EXPECT_STATUS(syncseg_segment(model, time_major, len, dim, frames,
                                SYNCSEG_LAYOUT_TIME_BY_DIM, &segs_t),
                SYNCSEG_STATUS_OK);
  size_t count_t = 0;
  EXPECT_STATUS(syncseg_segments_count(segs_t, &count_t), SYNCSEG_STATUS_OK);
  CHECK(count_t == count, "time-major: %zu segments, dim-major %zu", count_t, count);
  EXPECT_STATUS(syncseg_segments_free(&segs_t), SYNCSEG_STATUS_OK);
  free(time_major);

  /* Editor markers at NTSC 29.97 fps. */
  const char *formats[2] = {"edl", "otio"};
  for (int k = 0; k < 2; k++) {
    char *text = NULL;
    EXPECT_STATUS(syncseg_segments_render(segs, formats[k], 30000, 1001, "abi smoke", &text),
                  SYNCSEG_STATUS_OK);
    if (text) {
      char path[4096];
      snprintf(path, sizeof path, "%s/markers.%s", argv[5], formats[k]);
      FILE *o = fopen(path, "w");
      CHECK(o != NULL, "cannot write %s", path);
      if (o) {
        fputs(text, o);
        fclose(o);
      }
    }
    EXPECT_STATUS(syncseg_string_free(&text), SYNCSEG_STATUS_OK);
    CHECK(text == NULL, "string free did not null the pointer");
  }
  char *text = NULL;
  EXPECT_STATUS(syncseg_segments_render(segs, "docx", 30000, 1001, NULL, &text),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_segments_render(segs, "edl", 30000, 0, NULL, &text),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  char not_ours[] = "not ours";
  char *foreign = not_ours;
  EXPECT_STATUS(syncseg_string_free(&foreign), SYNCSEG_STATUS_INVALID_ARGUMENT);

  /* Bad input. */
  SyncsegModel *none = NULL;
  EXPECT_STATUS(syncseg_model_load(NULL, &none), SYNCSEG_STATUS_NULL_POINTER);
  EXPECT_STATUS(syncseg_model_load(argv[1], NULL), SYNCSEG_STATUS_NULL_POINTER);
  EXPECT_STATUS(syncseg_model_load("/nonexistent/model", &none), SYNCSEG_STATUS_IO);
  CHECK(none == NULL, "failed load left a handle");
  EXPECT_STATUS(syncseg_model_load("bad\xff\xfe utf8", &none), SYNCSEG_STATUS_INVALID_ARGUMENT);
  SyncsegSegments *bad = NULL;
  EXPECT_STATUS(syncseg_segment(model, NULL, len, dim, frames, SYNCSEG_LAYOUT_DIM_BY_TIME, &bad),
                SYNCSEG_STATUS_NULL_POINTER);
  EXPECT_STATUS(syncseg_segment(NULL, features, len, dim, frames, SYNCSEG_LAYOUT_DIM_BY_TIME, &bad),
                SYNCSEG_STATUS_NULL_POINTER);
  EXPECT_STATUS(syncseg_segment(model, features, len - 1, dim, frames, SYNCSEG_LAYOUT_DIM_BY_TIME, &bad),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_segment(model, features, len, dim + 1, frames, SYNCSEG_LAYOUT_DIM_BY_TIME, &bad),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_segment(model, features, 0, dim, 0, SYNCSEG_LAYOUT_DIM_BY_TIME, &bad),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  /* Layouts are uint32_t: any value other than the two layouts is refused
   * (a Rust enum parameter holding 2 was undefined behaviour; ABI 1). */
  EXPECT_STATUS(syncseg_segment(model, features, len, dim, frames, 2, &bad),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_segment(model, features, len, dim, frames, 0xFFFFFFFFu, &bad),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(syncseg_last_error(), "layout is 4294967295") != NULL,
        "the message names the layout: %s", syncseg_last_error());
  /* dim × frames overflowing size_t is refused, not wrapped. */
  EXPECT_STATUS(syncseg_segment(model, features, len, dim, SIZE_MAX / 2 + 1,
                                SYNCSEG_LAYOUT_DIM_BY_TIME, &bad),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_segment(model, features, SIZE_MAX, dim, frames,
                                SYNCSEG_LAYOUT_DIM_BY_TIME, &bad),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  /* A status is a fixed-width integer in the header. */
  CHECK(sizeof(SyncsegStatus) == 4 && sizeof(SyncsegLayout) == 4, "32-bit status and layout");
  float saved = features[3];
  features[3] = NAN;
  EXPECT_STATUS(syncseg_segment(model, features, len, dim, frames, SYNCSEG_LAYOUT_DIM_BY_TIME, &bad),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  features[3] = saved;
  CHECK(bad == NULL, "failed segment left a handle");
  SyncsegSegment s;
  EXPECT_STATUS(syncseg_segments_get(segs, count, &s, NULL), SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_segments_get(segs, 0, NULL, NULL), SYNCSEG_STATUS_NULL_POINTER);
  /* A made-up pointer, and a live handle of the wrong type, are refused. */
  EXPECT_STATUS(syncseg_segments_count((const SyncsegSegments *)features, &count),
                SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_segments_count((const SyncsegSegments *)model, &count),
                SYNCSEG_STATUS_INVALID_ARGUMENT);

  /* Freeing nulls the caller's pointer; a stale copy is detected. */
  SyncsegSegments *stale = segs;
  EXPECT_STATUS(syncseg_segments_free(&segs), SYNCSEG_STATUS_OK);
  CHECK(segs == NULL, "free did not null the pointer");
  EXPECT_STATUS(syncseg_segments_free(&segs), SYNCSEG_STATUS_OK); /* NULL: no-op */
  EXPECT_STATUS(syncseg_segments_free(&stale), SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_segments_count(stale, &count), SYNCSEG_STATUS_INVALID_ARGUMENT);
  EXPECT_STATUS(syncseg_model_free(&model), SYNCSEG_STATUS_OK);
  EXPECT_STATUS(syncseg_model_free(NULL), SYNCSEG_STATUS_NULL_POINTER);

  free(features);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("all C ABI checks passed\n");
  return 0;
}
