/* Drives the method's jobs through the C ABI: trains an exo teacher with
 * syncseg_train, distills it to the ego view with syncseg_distill (both
 * with a progress callback), loads the student; then refused inputs, which
 * must come back as a status with a message and write nothing.
 *
 * usage: abi_train DATA_DIR OUT_DIR
 * DATA_DIR is a synthetic benchmark (`syncseg synth`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncseg.h"

#include "check.h"

/* What the progress callback saw. */
struct Progress {
  int stages;
  int epochs;
  int steps;
};

static void on_progress(const char *event, void *user) {
  struct Progress *p = (struct Progress *)user;
  if (strstr(event, "\"event\":\"stage\"")) p->stages++;
  if (strstr(event, "\"event\":\"epoch\"")) {
    p->epochs++;
    printf("progress: %s\n", event);
  }
  if (strstr(event, "\"event\":\"step\"")) p->steps++;
}

/* A call that must fail with `want`, leave a message and hand out no report. */
static void expect_refused(SyncsegStatus got, SyncsegStatus want, char *report,
                           const char *what, const char *needle) {
  const char *msg = syncseg_last_error();
  CHECK(got == want, "%s returned %u, expected %u (%s)", what, (unsigned)got,
        (unsigned)want, msg ? msg : "no message");
  CHECK(msg != NULL && strstr(msg, needle) != NULL,
        "%s: message '%s' does not name '%s'", what, msg ? msg : "", needle);
  CHECK(report == NULL, "%s handed out a report", what);
  printf("refused as expected: %s -> %s\n", what, msg ? msg : "");
}

static int exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f) fclose(f);
  return f != NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DATA_DIR OUT_DIR\n", argv[0]);
    return 2;
  }
  const char *data = argv[1];
  const char *out = argv[2];
  char inputs[4096], options[256], path[1024];

  /* 1. The exo teacher. */
  snprintf(inputs, sizeof inputs,
           "{\"features\": \"%s/features/exo\", \"labels\": \"%s/groundTruth\","
           " \"mapping\": \"%s/mapping.txt\", \"videos\": \"%s/splits/exo_train.bundle\","
           " \"val_videos\": \"%s/splits/exo_val.bundle\", \"out\": \"%s/teacher\"}",
           data, data, data, data, data, out);
  snprintf(options, sizeof options, "{\"epochs\": 2, \"width_scale\": 0.125}");
  struct Progress p = {0, 0, 0};
  char *report = NULL;
  SyncsegStatus s = syncseg_train(inputs, options, on_progress, &p, &report);
  CHECK(s == SYNCSEG_STATUS_OK, "syncseg_train: %u (%s)", (unsigned)s,
        syncseg_last_error() ? syncseg_last_error() : "");
  CHECK(p.stages == 1 && p.epochs == 2 && p.steps > 0,
        "progress: %d stages, %d epochs, %d steps", p.stages, p.epochs, p.steps);
  CHECK(report && strstr(report, "\"epochs_done\":2"), "train report: %s",
        report ? report : "NULL");
  printf("train report: %s\n", report ? report : "NULL");
  CHECK(syncseg_string_free(&report) == SYNCSEG_STATUS_OK && report == NULL,
        "freeing the report");

  /* 2. TAS distillation to the ego view, no labels. */
  snprintf(inputs, sizeof inputs,
           "{\"teacher\": \"%s/teacher\", \"teacher_features\": \"%s/features/exo\","
           " \"student_features\": \"%s/features/ego\", \"videos\": \"%s/splits/adapt.bundle\","
           " \"out\": \"%s/student\"}",
           out, data, data, data, out);
  struct Progress q = {0, 0, 0};
  s = syncseg_distill(inputs, "{\"epochs\": 1}", on_progress, &q, &report);
  CHECK(s == SYNCSEG_STATUS_OK, "syncseg_distill: %u (%s)", (unsigned)s,
        syncseg_last_error() ? syncseg_last_error() : "");
  CHECK(q.stages == 1 && q.epochs == 1, "distill progress: %d stages, %d epochs",
        q.stages, q.epochs);
  CHECK(report && strstr(report, "\"stages\""), "distill report: %s",
        report ? report : "NULL");
  printf("distill report: %s\n", report ? report : "NULL");
  syncseg_string_free(&report);
  SyncsegModel *student = NULL;
  snprintf(path, sizeof path, "%s/student", out);
  CHECK(syncseg_model_load(path, &student) == SYNCSEG_STATUS_OK, "loading the student: %s",
        syncseg_last_error() ? syncseg_last_error() : "");
  syncseg_model_free(&student);

  /* 3. Refused before anything is written. */
  snprintf(inputs, sizeof inputs,
           "{\"features\": \"%s/features/exo\", \"labels\": \"%s/groundTruth\","
           " \"mapping\": \"%s/mapping.txt\", \"videos\": \"%s/splits/exo_train.bundle\","
           " \"out\": \"%s/refused\"}",
           data, data, data, data, out);
  report = NULL;
  expect_refused(syncseg_train(inputs, "{\"epoch\": 2}", NULL, NULL, &report),
                 SYNCSEG_STATUS_INVALID_ARGUMENT, report, "a misspelt option", "epoch");
  expect_refused(syncseg_train(inputs, "{\"epochs\": 0}", NULL, NULL, &report),
                 SYNCSEG_STATUS_INVALID_ARGUMENT, report, "zero epochs", "epochs");
  expect_refused(syncseg_train(inputs, "{\"epochs\": ", NULL, NULL, &report),
                 SYNCSEG_STATUS_INVALID_ARGUMENT, report, "malformed JSON", "options_json");
  expect_refused(syncseg_train(NULL, NULL, NULL, NULL, &report),
                 SYNCSEG_STATUS_NULL_POINTER, report, "NULL inputs", "inputs_json");
  snprintf(inputs, sizeof inputs,
           "{\"features\": \"%s/features/exo\", \"labels\": \"%s/groundTruth\","
           " \"mapping\": \"%s/no-such-mapping.txt\", \"videos\": \"%s/splits/exo_train.bundle\","
           " \"out\": \"%s/refused\"}",
           data, data, data, data, out);
  expect_refused(syncseg_train(inputs, NULL, NULL, NULL, &report), SYNCSEG_STATUS_IO,
                 report, "a missing mapping", "no-such-mapping.txt");
  snprintf(path, sizeof path, "%s/refused/model.json", out);
  CHECK(!exists(path), "a refused job wrote %s", path);

  if (failures) {
    fprintf(stderr, "%d C ABI training checks failed\n", failures);
    return 1;
  }
  printf("all C ABI training checks passed\n");
  return 0;
}
