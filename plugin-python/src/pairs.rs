//! `pair_loss`: the label-free score distillation selects its epoch on
//! (the synchronized MSE between student and teacher on held-out pairs),
//! for any student and any set of heads, so that students distilled with
//! different `levels` can be compared on one yardstick.

use std::path::PathBuf;

use pyo3::prelude::*;
use syncseg_core::pipeline;

use crate::errors::OrPy;
use crate::model::Model;

/// The held-out pair loss of `student` against `teacher`: for each
/// synchronized pair of `videos` (a split bundle; teacher view from
/// `teacher_features`, student view from `student_features`), the MSE
/// between the student's heads on the student view and the teacher's on
/// the teacher view, summed over `levels` (default: every head of the
/// teacher) and averaged over the pairs' windows. No labels are read. With
/// `distill`'s `levels` and `val_videos` it is the value that run selected
/// its epoch on (its lowest `val_distill_loss`).
#[pyfunction]
#[pyo3(signature = (teacher, student, *, teacher_features, student_features, videos, levels = None, time_major = false))]
#[allow(clippy::too_many_arguments)]
pub fn pair_loss(
    py: Python<'_>,
    teacher: PyRef<'_, Model>,
    student: PyRef<'_, Model>,
    teacher_features: PathBuf,
    student_features: PathBuf,
    videos: PathBuf,
    levels: Option<Vec<usize>>,
    time_major: bool,
) -> PyResult<f64> {
    let (teacher, student) = (teacher.inner(), student.inner());
    py.detach(|| {
        pipeline::distill::pair_loss(
            teacher,
            student,
            &teacher_features,
            &student_features,
            &videos,
            levels,
            time_major,
        )
    })
    .or_py()
}
