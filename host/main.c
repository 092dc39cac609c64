/* main.c: the lorafuse command-line interface (placeholder until the commands land). */
#include <stdio.h>

int main(void) {
    puts("lorafuse");
    return 0;
}
