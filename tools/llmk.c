/* placeholder until the CLI lands */
#include "llmk.h"
int main(void) { return 0; }
