//! Prints the word frequencies of its arguments, one `word count` per line.

fn main() {
    let text = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    for (word, count) in wordfreq::frequencies(&text) {
        println!("{word} {count}");
    }
}
