use wyrmhole::Model;

#[derive(Model)]
enum Status {
    Open,
    Done,
}

fn main() {}
