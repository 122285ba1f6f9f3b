/*
 * Binds a firmware example to the generated model it runs. Build with -DMODEL_NAME=<name>, the
 * --name given to `edgeseq codegen`, and the generated folder on the include path (the Makefiles
 * do both); then MODEL(step) is <name>_step, MODEL(INPUT_SIZE) is <name>_INPUT_SIZE, and so on.
 */
#ifndef EDGESEQ_MODEL_H
#define EDGESEQ_MODEL_H

#ifndef MODEL_NAME
#error "define MODEL_NAME as the --name given to edgeseq codegen, e.g. -DMODEL_NAME=gru"
#endif

#define MODEL_JOIN_(name, suffix) name##_##suffix
#define MODEL_JOIN(name, suffix) MODEL_JOIN_(name, suffix)
#define MODEL(suffix) MODEL_JOIN(MODEL_NAME, suffix)

#define MODEL_STRING_(text) #text
#define MODEL_STRING(text) MODEL_STRING_(text)

#include MODEL_STRING(MODEL_NAME.h)

#endif /* EDGESEQ_MODEL_H */
