# The voice options that benchmarks/voice_stage.sh's stages add, named once for the results scripts (source this file):
#   BROAD_SHIFT       half of the clips shifted in voice both ways: formants x 0.85-1.25, pitch x 0.7-2.6 (../results/soup_broad)
#   EQUALIZER_OPTIONS half of the clips through a random +-15 dB equalizer (../results/equalizer)
#   RELEASE_RECIPE    the equalizer stage's and every release ingredient's since: the shift upwards only (formants
#                     x 1.0-1.2, pitch x 1.2-2.6) and the equalizer
#   source benchmarks/voice_recipes.sh && bash benchmarks/voice_stage.sh RUN_DIR SEED START "${RELEASE_RECIPE[@]}"
# shellcheck disable=SC2034  # the arrays are for the scripts that source this file
BROAD_SHIFT=(--set "train.speaker_formant_range=[0.85,1.25]" --set "train.speaker_pitch_range=[0.7,2.6]")
EQUALIZER_OPTIONS=(--set train.equalizer=0.5 --set train.equalizer_max_db=15)
RELEASE_RECIPE=(--set "train.speaker_formant_range=[1.0,1.2]" --set "train.speaker_pitch_range=[1.2,2.6]" "${EQUALIZER_OPTIONS[@]}")
