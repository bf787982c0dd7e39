# Anchor for bench/forest.sh: R ranger, 100 trees, all threads, the same
# 5-fold shuffled stratified CV on the Kaggle forest-cover train set (Id
# dropped). Prints one line: "acc=A seconds=S".
suppressMessages(library(ranger))
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(gzfile(args[1]))
df$Id <- NULL
df$Cover_Type <- factor(df$Cover_Type)
k <- if (length(args) > 1) as.integer(args[2]) else 5
set.seed(0)
fold <- integer(nrow(df))
for (cl in levels(df$Cover_Type)) {
  idx <- which(df$Cover_Type == cl)
  fold[idx] <- sample(rep_len(seq_len(k), length(idx)))
}
threads <- parallel::detectCores()
t0 <- Sys.time()
accs <- numeric(k)
for (f in seq_len(k)) {
  tr <- df[fold != f, ]
  te <- df[fold == f, ]
  m <- ranger(Cover_Type ~ ., data = tr, num.trees = 100, num.threads = threads, seed = 0)
  accs[f] <- mean(predict(m, te, num.threads = threads)$predictions == te$Cover_Type)
}
secs <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
cat(sprintf("acc=%.4f seconds=%.3f\n", mean(accs), secs))
